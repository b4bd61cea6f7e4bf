// nucleus run by an unprivileged user (uid 65534 through setpriv): the
// workload's uid maps to the caller's, one id, with the same seccomp,
// capability and filesystem isolation.
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <cstring>

#include "harness.hpp"

using namespace nit;

namespace {

constexpr uid_t kNobody = 65534;
constexpr const char* kSetpriv = "/usr/bin/setpriv";

// Checks, as uid 65534 in a forked child, what the tests need; SKIPs with
// the reason when something is missing.
void require_unprivileged_sandboxes() {
    require_root();  // switching to uid 65534 needs root
    if (::access(kSetpriv, X_OK) != 0) SKIP("needs setpriv(1) (util-linux)");
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(1);
        if (::access(kNucleus, X_OK) != 0) ::_exit(2);
        std::string checker = std::string(kCheckerDir) + "/nucleus-check";
        if (::access(checker.c_str(), R_OK | X_OK) != 0) ::_exit(3);
        if (::unshare(CLONE_NEWUSER) != 0) ::_exit(100 + errno);
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    if (code == 1) FAIL("could not switch to uid 65534");
    if (code == 2) SKIP("uid 65534 cannot execute " << kNucleus);
    if (code == 3) SKIP("uid 65534 cannot read " << kCheckerDir);
    if (code >= 100)
        SKIP("the kernel refuses unprivileged user namespaces: unshare(CLONE_NEWUSER) as uid 65534 failed: "
             << std::strerror(code - 100));
    REQUIRE(code == 0);
}

// A fresh 0777 directory; NUCLEUS_STATE_DIR is a not yet existing directory
// in it, because nucleus insists on owning its state directory (it refuses
// one owned by another uid, such as the root-owned temp dir itself).
struct Unprivileged {
    TempDir dir{"nonroot", 0777};
    fs::path state = dir / "state";
    std::string records() const { return (state / "sandboxes").string(); }

    Result run(const std::vector<std::string>& flags, const std::vector<std::string>& command) const {
        std::vector<std::string> argv = {kSetpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"};
        auto nucleus = nucleus_argv(with_checker(flags), command);
        argv.insert(argv.end(), nucleus.begin(), nucleus.end());
        SpawnOptions options;
        options.env = {"NUCLEUS_STATE_DIR=" + state.string()};
        options.unset_env = {"XDG_RUNTIME_DIR"};
        options.deadline = 30s;
        return nit::run(argv, options);
    }
};

}  // namespace

TEST_CASE("unprivileged: default root with the caller's uid as the only one mapped", "[nonroot][host-state]") {
    require_unprivileged_sandboxes();
    Unprivileged u;
    auto baseline = settled_leftovers();
    auto r = u.run({}, {kChecker, "status"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto s = parse_kv(r.out);
    CHECK(kv(s, "uid_map") == "1000 65534 1");
    CHECK(kv(s, "gid_map") == "1000 65534 1");
    CHECK(kv(s, "uid") == "1000");
    CHECK(kv(s, "gid") == "1000");
    CHECK(kv(s, "pid") == "1");
    CHECK(kv(s, "proc_pids") == "1");
    for (const char* key : {"cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"}) {
        INFO(key);
        CHECK(kv(s, key) == "0000000000000000");
    }
    CHECK(kv(s, "no_new_privs") == "1");
    CHECK(kv(s, "seccomp") == "2");
    CHECK(kv(s, "root_write_errno") == "EROFS");
    CHECK(kv(s, "tmp_writable") == "1");
    CHECK(kv(s, "home_writable") == "1");
    CHECK(kv(s, "netns_ifaces") == "lo");
    // The state directory belongs to the caller and is clean afterwards.
    struct stat st {};
    REQUIRE(::stat(u.state.c_str(), &st) == 0);
    CHECK(st.st_uid == kNobody);
    CHECK(count_leftovers(u.records()).records == 0);
    auto after = wait_for_leftovers(baseline);
    INFO("before: " << baseline.describe() << "\nafter:  " << after.describe());
    CHECK(after == baseline);
}

TEST_CASE("unprivileged: privileged syscalls are refused just the same", "[nonroot][seccomp]") {
    require_unprivileged_sandboxes();
    Unprivileged u;
    auto r = u.run({}, {kChecker, "syscalls"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto s = parse_kv(r.out);
    for (const char* name : {"mount", "unshare_newuser", "unshare_newns", "setns", "ptrace", "keyctl", "bpf",
                             "perf_event_open", "chroot", "pivot_root", "sethostname", "clone_newuser"}) {
        std::string key = std::string("sys:") + name;
        INFO(key);
        CHECK(kv(s, key) == "EPERM");
    }
    for (const auto& [key, value] : s) {
        if (key.rfind("sys:", 0) != 0) continue;
        INFO(key << "=" << value);
        CHECK(value != "ok");
    }
}

TEST_CASE("unprivileged: busybox rootfs", "[nonroot]") {
    require_unprivileged_sandboxes();
    require_busybox();
    BusyboxRootfs rootfs;
    Unprivileged u;
    auto r =
        u.run({"--rootfs", rootfs.str()}, {"/bin/sh", "-c", "echo hello from busybox; /checker/nucleus-check status"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.out, "hello from busybox"));
    auto s = parse_kv(r.out);
    CHECK(kv(s, "uid_map") == "1000 65534 1");
    CHECK(kv(s, "cap_eff") == "0000000000000000");
    CHECK(kv(s, "seccomp") == "2");
    CHECK(kv(s, "root_write_errno") == "EROFS");
}

TEST_CASE("unprivileged: files written to a bind-rw workspace stay the caller's", "[nonroot][workspace]") {
    require_unprivileged_sandboxes();
    Unprivileged u;
    fs::path ws = u.dir / "ws";
    fs::create_directory(ws);
    REQUIRE(::chown(ws.c_str(), kNobody, kNobody) == 0);
    fs::permissions(ws, fs::perms(0755));
    auto r = u.run({"--workspace", ws.string()}, {"/bin/sh", "-c", "echo made > /workspace/out.txt"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    REQUIRE(fs::exists(ws / "out.txt"));
    CHECK(read_file(ws / "out.txt") == "made\n");
    struct stat st {};
    REQUIRE(::stat((ws / "out.txt").c_str(), &st) == 0);
    CHECK(st.st_uid == kNobody);
    CHECK(st.st_gid == kNobody);
}

TEST_CASE("unprivileged: strict-agent and production fail closed without a cgroup, as for root", "[nonroot][modes]") {
    require_unprivileged_sandboxes();
    Unprivileged u;
    // Under this suite the caller's own cgroup is not delegated to it, so
    // there is no cgroup to make: agent mode degrades, the strict modes
    // must refuse (they used to warn and exit 0).
    auto agent = u.run({}, {"/bin/true"});
    INFO(agent.describe());
    if (!contains(agent.err, "running degraded: cgroup"))
        SKIP("this caller has a delegated cgroup here; the refusal needs a host where it has none");
    CHECK(agent.exit_code == 0);
    auto strict = u.run({"--strict-agent"}, {"/bin/true"});
    INFO(strict.describe());
    CHECK(strict.exit_code == 125);
    CHECK((contains(strict.err, "[rule cgroup-required]") || contains(strict.err, "[rule limits-applicable]")));
    CHECK_FALSE(contains(strict.err, "running degraded"));
    CHECK(count_leftovers(u.records()).records == 0);
}
