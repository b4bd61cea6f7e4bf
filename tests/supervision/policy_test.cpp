// Issue-level checks of the security policies, end to end through nucleus.
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../kernel/sandbox_run.hpp"

using namespace nucleus::kernel_lane;
namespace fs = std::filesystem;

namespace {

void require_root() {
    if (::geteuid() != 0) SKIP("needs root (user namespaces with full id maps, cgroups)");
}

struct TempDir {
    fs::path path;
    explicit TempDir(const std::string& tag) {
        path = fs::temp_directory_path() / ("nucleus-pol-" + tag + "-" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
        fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
    }
    ~TempDir() { fs::remove_all(path); }
};

// A static busybox rootfs: a workload whose syscalls do not depend on the host's libc.
fs::path busybox_rootfs(const TempDir& dir) {
    fs::path root = dir.path / "rootfs";
    fs::create_directories(root / "bin");
    fs::copy_file("/bin/busybox", root / "bin/busybox");
    for (const char* applet : {"sh", "echo", "cat", "ls", "true"}) fs::create_symlink("busybox", root / "bin" / applet);
    return root;
}

std::vector<nlohmann::json> read_lines(const fs::path& file) {
    std::vector<nlohmann::json> out;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
}

}  // namespace

TEST_CASE("a workload runs under Docker's default seccomp profile") {
    require_root();
    const char* profile = "/usr/local/share/nucleus/docker-default-seccomp.json";
    if (!fs::exists(profile)) SKIP(std::string(profile) + " is missing (scripts/install-deps.sh extracts it)");
    auto run = run_sandbox({"--seccomp-profile", profile, "--", "/bin/sh", "-c", "echo under-docker-profile"});
    INFO(run.err);
    CHECK(run.exit_code == 0);
    CHECK(run.out == "under-docker-profile\n");
}

TEST_CASE("trace, generate, enforce: the traced program runs, anything else is refused") {
    require_root();
    TempDir dir("trace");
    auto root = busybox_rootfs(dir);
    auto trace = dir.path / "trace.ndjson", profile = dir.path / "profile.json", audit = dir.path / "audit.jsonl";
    auto traced = run_sandbox({"--rootfs", root.string(), "--seccomp-mode", "trace", "--seccomp-log", trace.string(),
                               "--audit-log", audit.string(), "--", "/bin/sh", "-c", "echo traced"});
    INFO(traced.err);
    REQUIRE(traced.exit_code == 0);
    CHECK(traced.out == "traced\n");
    auto lines = read_lines(trace);
    CHECK(lines.size() > 5);
    bool saw_execve = false;
    for (const auto& l : lines) saw_execve = saw_execve || l.value("syscall", "") == "execve";
    CHECK(saw_execve);
    bool audited = false;
    for (const auto& a : read_lines(audit)) audited = audited || a.value("audit", "") == "seccomp_trace";
    CHECK(audited);

    auto generated = run_sandbox_raw({NUCLEUS_BINARY, "seccomp", "generate", trace.string(), "-o", profile.string()});
    REQUIRE(generated.exit_code == 0);
    auto enforced = run_sandbox(
        {"--rootfs", root.string(), "--seccomp-profile", profile.string(), "--", "/bin/sh", "-c", "echo traced"});
    CHECK(enforced.exit_code == 0);
    CHECK(enforced.out == "traced\n");
    // Running an external command needs fork/clone, which the trace never saw.
    auto outside =
        run_sandbox({"--rootfs", root.string(), "--seccomp-profile", profile.string(), "--", "/bin/sh", "-c", "ls /"});
    CHECK(outside.exit_code != 0);
    CHECK(outside.err.find("Operation not permitted") != std::string::npos);
}

TEST_CASE("capability and Landlock policies are applied as written") {
    require_root();
    TempDir dir("policies");
    std::ofstream(dir.path / "caps.toml")
        << "bounding = [\"NET_BIND_SERVICE\", \"CHOWN\"]\nambient = [\"NET_BIND_SERVICE\"]\n";
    auto caps =
        run_sandbox({"--caps-policy", (dir.path / "caps.toml").string(), "--", "/checker/nucleus-check", "status"});
    INFO(caps.err);
    CHECK(checker_value(caps.out, "cap_eff") == "0000000000000400");
    CHECK(checker_value(caps.out, "cap_bnd") == "0000000000000401");
    // A Landlock policy that grants /tmp read but no write.
    std::ofstream(dir.path / "landlock.toml")
        << "min_abi = 1\n"
           "[[rule]]\npath = \"/\"\naccess = [\"read_file\", \"read_dir\"]\n"
           "[[rule]]\npath = \"/checker\"\naccess = [\"read_file\", \"execute\"]\n";
    auto ll = run_sandbox({"--landlock-policy", (dir.path / "landlock.toml").string(), "--", "/checker/nucleus-check",
                           "write", "/tmp/x"});
    INFO(ll.err);
    if (!ll.events.empty() && !ll.events.front().at("landlock").value("enforced", false)) SKIP("no Landlock here");
    CHECK(checker_value(ll.out, "write") == "EACCES");
}

TEST_CASE("secrets are read-only, 0400, the workload's, and env-fd stays out of argv") {
    require_root();
    TempDir dir("secrets");
    std::ofstream(dir.path / "token") << "s3cret";
    std::ofstream(dir.path / "env.json") << R"({"API_KEY": "k-123"})";
    // Single quotes: the variable is expanded inside the sandbox only.
    std::string script =
        "cat /run/secrets/token; echo; echo $API_KEY; stat -c %a:%U /run/secrets/token; "
        "cat /proc/1/cmdline; echo; echo x > /run/secrets/other || echo refused";
    auto run =
        run_sandbox_raw({"/bin/sh", "-c",
                         std::string(NUCLEUS_BINARY) + " run --secret " + (dir.path / "token").string() +
                             " --env-fd 7 -- /bin/sh -c '" + script + "' 7<" + (dir.path / "env.json").string()});
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    CHECK(run.out.find("s3cret\nk-123\n400:agent\n") == 0);
    CHECK(run.out.find("k-123", 20) == std::string::npos);  // not in PID 1's command line
    CHECK(run.out.find("refused") != std::string::npos);
}

TEST_CASE("a tampered rootfs is refused by its attestation, with the differences named") {
    require_root();
    TempDir dir("attest");
    auto root = busybox_rootfs(dir);
    REQUIRE(run_sandbox_raw({NUCLEUS_BINARY, "rootfs", "attest", root.string()}).exit_code == 0);
    CHECK(run_sandbox({"--rootfs", root.string(), "--verify-rootfs-attestation", "--", "/bin/true"}).exit_code == 0);
    fs::copy_file("/bin/busybox", root / "bin/evil");
    fs::permissions(root / "bin/evil", fs::perms::set_uid, fs::perm_options::add);
    auto refused = run_sandbox({"--rootfs", root.string(), "--verify-rootfs-attestation", "--", "/bin/true"});
    CHECK(refused.exit_code == 125);
    CHECK(refused.err.find("setuid") != std::string::npos);
    CHECK(refused.err.find("bin/evil") != std::string::npos);
}

TEST_CASE("the audit log records the request, what was applied, and refusals with their rule") {
    require_root();
    TempDir dir("audit");
    auto log = dir.path / "audit.jsonl";
    REQUIRE(run_sandbox({"--audit-log", log.string(), "--", "/bin/true"}).exit_code == 0);
    auto refused = run_sandbox({"--audit-log", log.string(), "--strict-agent", "--network", "host", "--", "/bin/true"});
    CHECK(refused.exit_code == 125);
    auto records = read_lines(log);
    REQUIRE(records.size() >= 4);
    CHECK(records[0].value("audit", "") == "request");
    CHECK(records[0].at("policies").at("seccomp").value("source", "") == "built-in default");
    CHECK(records[1].value("audit", "") == "applied");
    CHECK(records[1].at("seccomp").value("enforced", false));
    CHECK(records.back().value("audit", "") == "refused");
    CHECK(records.back().value("reason", "").find("[rule no-host-network]") != std::string::npos);
}
