// The escape suite: from inside a sandbox, in each service mode, everything
// a workload could use to reach the host is checked to be closed. The
// static checker (tests/checker) does the probing; a mode the host cannot
// run (its rules refuse, e.g. production without a memory controller) is
// SKIPPED with the rule's message. The system lane (scripts/system-lane.sh,
// set tests/system/modes.sh) runs every mode.
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>

#include "../kernel/sandbox_run.hpp"

using namespace nucleus::kernel_lane;

namespace {

// A minimal read-only rootfs for production mode (which needs --rootfs).
std::string busybox_rootfs() {
    static std::string dir = [] {
        auto path = std::filesystem::temp_directory_path() / ("nucleus-escape-rootfs-" + std::to_string(::getpid()));
        std::filesystem::create_directories(path / "bin");
        std::filesystem::copy_file("/bin/busybox", path / "bin/busybox",
                                   std::filesystem::copy_options::overwrite_existing);
        for (const char* applet : {"sh", "true"}) {
            std::error_code ec;
            std::filesystem::create_symlink("busybox", path / "bin" / applet, ec);
        }
        return path.string();
    }();
    return dir;
}

std::vector<std::string> mode_args(const std::string& mode) {
    if (mode == "production") return {"--service-mode", "production", "--memory", "256m", "--rootfs", busybox_rootfs()};
    return {"--service-mode", mode};
}

SandboxRun run_checker(const std::string& mode, const char* subcommand) {
    if (::geteuid() != 0) SKIP("needs root; scripts/system-lane.sh runs it in every mode");
    auto args = mode_args(mode);
    args.insert(args.end(), {"--", "/checker/nucleus-check", subcommand});
    auto run = run_sandbox(args);
    if (run.exit_code == 125 && run.err.find("[rule ") != std::string::npos)
        SKIP(mode + " mode cannot run on this host (scripts/system-lane.sh runs it): " + run.err);
    return run;
}

void check_inside(const std::string& mode) {
    auto run = run_checker(mode, "status");
    INFO(mode << " mode\n" << run.out << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(checker_value(run.out, "pid") == "1");  // own PID namespace
    CHECK(std::stoi(checker_value(run.out, "proc_pids")) <= 2);  // host processes invisible
    for (const char* set : {"cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"})
        CHECK(checker_value(run.out, set) == "0000000000000000");
    CHECK(checker_value(run.out, "no_new_privs") == "1");
    CHECK(checker_value(run.out, "seccomp") == "2");
    auto uid_map = checker_value(run.out, "uid_map");  // "0 HOSTBASE 65536"
    REQUIRE(uid_map.rfind("0 ", 0) == 0);
    CHECK(std::stoull(uid_map.substr(2)) >= 1000000000ULL);  // an unprivileged host range
    CHECK(checker_value(run.out, "root_writable") == "0");
    CHECK(checker_value(run.out, "root_write_errno") == "EROFS");
    CHECK(checker_value(run.out, "readonly:/proc/sys") == "1");
    for (const char* masked : {"masked:/proc/kcore", "masked:/proc/keys", "masked:/proc/timer_list",
                               "masked:/proc/sched_debug", "masked:/proc/acpi", "masked:/proc/scsi"}) {
        auto value = checker_value(run.out, masked);
        CHECK((value == "absent" || value == "empty"));
    }
    CHECK(checker_value(run.out, "netns_ifaces") == "lo");
    CHECK(checker_value(run.out, "lo_up") == "1");
}

void check_syscalls(const std::string& mode) {
    auto run = run_checker(mode, "syscalls");
    INFO(mode << " mode\n" << run.out << run.err);
    REQUIRE(run.exit_code == 0);
    for (const char* name : {"mount",           "umount2",      "unshare_newuser", "unshare_newns",     "setns",
                             "ptrace",          "keyctl",       "add_key",         "request_key",       "bpf",
                             "perf_event_open", "init_module",  "finit_module",    "kexec_load",        "reboot",
                             "swapon",          "chroot",       "pivot_root",      "open_by_handle_at", "userfaultfd",
                             "clone_newuser",   "settimeofday", "clock_settime"})
        CHECK(checker_value(run.out, std::string("sys:") + name) == "EPERM");
    CHECK(checker_value(run.out, "sys:clone3") == "ENOSYS");  // glibc falls back to clone
    CHECK(checker_value(run.out, "sys:io_uring_setup") == "ENOSYS");
}

}  // namespace

TEST_CASE("escape checks from inside: agent mode") { check_inside("agent"); }
TEST_CASE("escape checks from inside: strict-agent mode") { check_inside("strict-agent"); }
TEST_CASE("escape checks from inside: production mode") { check_inside("production"); }
TEST_CASE("refused syscalls: agent mode") { check_syscalls("agent"); }
TEST_CASE("refused syscalls: strict-agent mode") { check_syscalls("strict-agent"); }
TEST_CASE("refused syscalls: production mode") { check_syscalls("production"); }
