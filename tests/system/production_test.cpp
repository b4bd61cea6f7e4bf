// strict-agent and production mode end to end, on a host that can run them:
// a pure cgroup v2 hierarchy with the memory and pids controllers, and
// Landlock. The system lane (scripts/system-lane.sh, set tests/system/modes.sh)
// is such a host; on this project's hybrid-cgroup machines every test here
// says SKIPPED and names the lane.
//
// Each mode's sandbox starts with every layer applied; then every rule of
// the mode is broken, one at a time, from that same starting command, so the
// refusal is the rule's alone: exit 125, the rule named, nothing left behind.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "../kernel/sandbox_run.hpp"
#include "core/modes.hpp"
#include "isolation/landlock.hpp"

using namespace nucleus::kernel_lane;
namespace fs = std::filesystem;

namespace {

constexpr const char* kLane = "scripts/system-lane.sh runs it (tests/system/modes.sh)";

void require_production_host() {
    if (::geteuid() != 0) SKIP(std::string("needs root; ") + kLane);
    std::string mount;
    auto controllers = root_controllers(mount);
    for (const char* needed : {"memory", "pids"})
        if (std::find(controllers.begin(), controllers.end(), needed) == controllers.end())
            SKIP(std::string("the ") + needed + " controller is not available at " +
                 (mount.empty() ? "(no cgroup2 mount)" : mount) + "; " + kLane);
    if (nucleus::isolation::landlock_abi() == 0) SKIP(std::string("no Landlock in this kernel; ") + kLane);
}

std::vector<nlohmann::json> read_lines(const fs::path& file) {
    std::vector<nlohmann::json> out;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line, nullptr, false));
    return out;
}

nlohmann::json audit_record(const fs::path& log, const std::string& kind) {
    for (const auto& record : read_lines(log))
        if (record.is_object() && record.value("audit", "") == kind) return record;
    return {};
}

std::string sha256_of(const fs::path& file) {
    auto run = run_sandbox_raw({"/usr/bin/sha256sum", file.string()});
    REQUIRE(run.exit_code == 0);
    return run.out.substr(0, 64);
}

// Everything a production sandbox declares, made once per test: an
// attested busybox rootfs, a secret, a Landlock policy, and a seccomp
// profile generated from a trace of the very workload it will confine.
struct Service {
    fs::path dir;
    fs::path rootfs, secret, landlock, profile, audit, state;
    std::string cgroup_parent;
    std::string profile_sha, landlock_sha;
    // Reads its secret, then tries to write the read-only root and /tmp
    // (a writable tmpfs that the Landlock policy grants no write on).
    std::vector<std::string> workload = {
        "--", "/bin/sh", "-c",
        "cat /run/secrets/token; echo; (echo x >/probe) || echo root-ro; (echo y >/tmp/probe) || echo tmp-denied"};

    explicit Service(const std::string& tag) {
        dir = fs::temp_directory_path() / ("nucleus-" + tag + "-" + std::to_string(::getpid()));
        fs::remove_all(dir);
        fs::create_directories(dir);
        fs::permissions(dir, fs::perms(0755));
        cgroup_parent = "nucleus-test-" + tag + "-" + std::to_string(::getpid());
        state = dir / "state";
        ::setenv("NUCLEUS_STATE_DIR", state.c_str(), 1);
        rootfs = dir / "rootfs";
        fs::create_directories(rootfs / "bin");
        fs::copy_file("/bin/busybox", rootfs / "bin/busybox");
        for (const char* applet : {"sh", "cat", "echo", "true"}) fs::create_symlink("busybox", rootfs / "bin" / applet);
        fs::copy_file(std::string(NUCLEUS_CHECKER_DIR) + "/nucleus-check", rootfs / "bin/nucleus-check");
        REQUIRE(run_sandbox_raw({NUCLEUS_BINARY, "rootfs", "attest", rootfs.string()}).exit_code == 0);
        secret = dir / "token";
        std::ofstream(secret) << "s3cret";
        landlock = dir / "landlock.toml";
        std::ofstream(landlock) << "min_abi = 1\n"
                                   "[[rule]]\npath = \"/\"\naccess = [\"read_file\", \"read_dir\"]\n"
                                   "[[rule]]\npath = \"/bin\"\naccess = [\"read_file\", \"execute\"]\n";
        landlock_sha = sha256_of(landlock);
        audit = dir / "audit.jsonl";
        profile = dir / "profile.json";
        trace_profile();
    }
    ~Service() {
        remove_cgroup_parent();
        ::unsetenv("NUCLEUS_STATE_DIR");
        fs::remove_all(dir);
    }

    // Everything but the mode and the seccomp policy.
    std::vector<std::string> common() const {
        return {"--cgroup-parent",
                cgroup_parent,
                "--memory",
                "64m",
                "--pids",
                "64",
                "--rootfs",
                rootfs.string(),
                "--verify-rootfs-attestation",
                "--landlock-policy",
                landlock.string(),
                "--landlock-policy-sha256",
                landlock_sha,
                "--secret",
                secret.string() + ":token",
                "--audit-log",
                audit.string()};
    }

    void trace_profile() {
        auto args = common();
        auto trace = dir / "trace.ndjson";
        args.insert(args.end(), {"--seccomp-mode", "trace", "--seccomp-log", trace.string()});
        args.insert(args.end(), workload.begin(), workload.end());
        auto traced = run_sandbox(args);
        INFO(traced.err);
        REQUIRE(traced.exit_code == 0);
        REQUIRE(run_sandbox_raw({NUCLEUS_BINARY, "seccomp", "generate", trace.string(), "-o", profile.string()})
                    .exit_code == 0);
        profile_sha = sha256_of(profile);
        fs::remove(audit);
        remove_cgroup_parent();
    }

    // The command of MODE with every layer, before the workload.
    std::vector<std::string> start_args(const std::string& mode) const {
        auto args = common();
        args.insert(args.begin(), {"--service-mode", mode});
        args.insert(args.end(), {"--seccomp-profile", profile.string(), "--seccomp-profile-sha256", profile_sha});
        return args;
    }

    SandboxRun run(std::vector<std::string> args) const {
        args.insert(args.end(), workload.begin(), workload.end());
        return run_sandbox(args);
    }

    // What a refused run must not leave: its cgroup parent (made only after
    // the rules passed) and any record in the state directory.
    void check_nothing_left() const {
        CHECK_FALSE(fs::exists("/sys/fs/cgroup/" + cgroup_parent));
        auto records = state / "sandboxes";
        CHECK((!fs::exists(records) || fs::is_empty(records)));
    }

    void remove_cgroup_parent() const { ::rmdir(("/sys/fs/cgroup/" + cgroup_parent).c_str()); }
};

// args with FLAG (and its value when it has one) removed.
std::vector<std::string> without(std::vector<std::string> args, const std::string& flag, bool has_value = true) {
    auto at = std::find(args.begin(), args.end(), flag);
    if (at != args.end()) args.erase(at, at + (has_value ? 2 : 1));
    return args;
}

std::vector<std::string> with(std::vector<std::string> args, std::initializer_list<std::string> more) {
    args.insert(args.end(), more);
    return args;
}

void check_started(const Service& svc, const SandboxRun& run, const std::string& mode) {
    INFO(mode << " mode\n" << run.out << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(run.out == "s3cret\nroot-ro\ntmp-denied\n");
    REQUIRE_FALSE(run.events.empty());
    const auto& start = run.events.front();
    CHECK(start.at("cgroup").is_string());
    CHECK(start.at("limits").at("memory_max").get<uint64_t>() == 64ull << 20);
    CHECK(start.at("limits").at("pids_max").get<uint64_t>() == 64);
    CHECK(start.at("landlock").value("enforced", false));
    CHECK(start.at("degraded").empty());
    auto request = audit_record(svc.audit, "request");
    CHECK(request.at("mode") == mode);
    CHECK(request.at("policies").at("seccomp").value("sha256", "") == svc.profile_sha);
    CHECK(request.at("policies").at("landlock").value("sha256", "") == svc.landlock_sha);
    auto applied = audit_record(svc.audit, "applied");
    CHECK(applied.at("seccomp").value("enforced", false));
    CHECK(applied.at("landlock").value("enforced", false));
    CHECK(applied.at("degraded").empty());
}

// One broken rule: how to break it, from the mode's starting command.
struct Breach {
    std::function<std::vector<std::string>(const Service&, std::vector<std::string>)> change;
    std::vector<std::string> prefix;  // run the command under this (e.g. another mount namespace)
};

std::map<std::string, Breach> breaches(const Service& svc) {
    auto min_abi = svc.dir / "min-abi.toml";
    std::ofstream(min_abi) << "min_abi = " << nucleus::isolation::landlock_abi() + 1
                           << "\n[[rule]]\npath = \"/\"\naccess = [\"read_file\"]\n";
    auto ws = svc.dir / "ws";
    fs::create_directories(ws);
    return {
        {"no-allow-degraded-security", {[](auto&, auto a) { return with(a, {"--allow-degraded-security"}); }, {}}},
        {"no-host-network",
         {[](auto&, auto a) {
              return with(a, {"--network", "host"});
          },
          {}}},
        {"no-seccomp-trace",
         {[](auto& s, auto a) {
              a = without(without(a, "--seccomp-profile"), "--seccomp-profile-sha256");
              return with(a, {"--seccomp-mode", "trace", "--seccomp-log", (s.dir / "t.ndjson").string()});
          },
          {}}},
        // A host with no cgroup2 mounted: the command in a mount namespace without it.
        {"cgroup-required",
         {[](auto&, auto a) { return a; },
          {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
           "umount -l /sys/fs/cgroup && exec \"$@\"", "sh"}}},
        {"landlock-min-abi",
         {[min_abi](auto&, auto a) {
              a = without(without(a, "--landlock-policy"), "--landlock-policy-sha256");
              return with(a, {"--landlock-policy", min_abi.string()});
          },
          {}}},
        {"memory-required", {[](auto&, auto a) { return without(a, "--memory"); }, {}}},
        {"rootfs-required",
         {[](auto&, auto a) { return without(without(a, "--rootfs"), "--verify-rootfs-attestation", false); }, {}}},
        {"no-writable-exec-workspace",
         {[ws](auto&, auto a) {
              return with(a, {"--workspace", ws.string(), "--workspace-exec"});
          },
          {}}},
        {"caps-within-policy",
         {[](auto&, auto a) {
              return with(a, {"--cap-add", "NET_BIND_SERVICE"});
          },
          {}}},
        {"kernel-lockdown",
         {[](auto&, auto a) {
              return with(a, {"--require-kernel-lockdown", "confidentiality"});
          },
          {}}},
        {"egress-no-net-caps",
         {[](auto&, auto a) {
              return with(without(a, "--network"),
                          {"--network", "egress", "--allow-cidr", "203.0.113.0/24:443", "--cap-add", "NET_ADMIN"});
          },
          {}}},
    };
}

// Rules whose breach needs what one process here cannot make, and where
// they are broken for real instead.
const std::map<std::string, std::string> kBrokenElsewhere = {
    {"limits-applicable", "the test case below: a non-root caller in a cgroup without the memory controller"},
    {"landlock-required", "tests/system/systemd.sh: a unit whose syscall filter hides Landlock"},
};

bool applies(const nucleus::core::ModeRule& rule, const std::string& mode) {
    return mode == "production" ? rule.production : rule.strict_agent;
}

void check_every_rule_refuses(const std::string& mode) {
    require_production_host();
    Service svc(mode);
    auto started = svc.run(svc.start_args(mode));
    check_started(svc, started, mode);
    svc.remove_cgroup_parent();
    auto table = breaches(svc);
    for (const auto& rule : nucleus::core::mode_rules()) {
        if (!applies(rule, mode)) continue;
        INFO(mode << " mode, rule " << rule.name);
        if (kBrokenElsewhere.count(rule.name)) continue;
        auto breach = table.find(rule.name);
        REQUIRE(breach != table.end());  // a new rule needs its breach here
        auto args = breach->second.change(svc, svc.start_args(mode));
        std::vector<std::string> argv = breach->second.prefix;
        argv.insert(argv.end(), {NUCLEUS_BINARY, "run"});
        argv.insert(argv.end(), args.begin(), args.end());
        argv.insert(argv.end(), svc.workload.begin(), svc.workload.end());
        auto refused = run_sandbox_raw(argv);
        INFO(refused.out << refused.err);
        CHECK(refused.exit_code == 125);
        CHECK(refused.err.find(std::string("[rule ") + rule.name + "]") != std::string::npos);
        svc.check_nothing_left();
    }
}

// The non-root caller's cgroup: a leaf delegated to uid 65534 under a
// parent that enables only pids, as a delegation without memory looks.
struct CgroupWithoutMemory {
    fs::path parent = "/sys/fs/cgroup/nucleus-test-without-memory-" + std::to_string(::getpid());
    fs::path leaf = parent / "leaf";
    CgroupWithoutMemory() {
        std::ofstream("/sys/fs/cgroup/cgroup.subtree_control") << "+pids";
        fs::create_directories(leaf.parent_path());
        std::ofstream(parent / "cgroup.subtree_control") << "+pids";
        fs::create_directories(leaf);
        for (const char* file : {"", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"})
            REQUIRE(::chown((leaf / file).c_str(), 65534, 65534) == 0);
    }
    bool has_children() const {
        for (const auto& entry : fs::directory_iterator(leaf))
            if (entry.is_directory()) return true;
        return false;
    }
    ~CgroupWithoutMemory() {
        ::rmdir(leaf.c_str());
        ::rmdir(parent.c_str());
    }
};

}  // namespace

TEST_CASE(
    "production: a sandbox starts with an attested rootfs, --memory, Landlock, a pinned seccomp profile and a secret") {
    require_production_host();
    Service svc("production-start");
    check_started(svc, svc.run(svc.start_args("production")), "production");
    svc.remove_cgroup_parent();

    // The pins hold: another profile hash, or a changed rootfs, is refused.
    auto args = svc.start_args("production");
    *(std::find(args.begin(), args.end(), "--seccomp-profile-sha256") + 1) = std::string(64, '0');
    auto wrong_pin = svc.run(args);
    CHECK(wrong_pin.exit_code == 125);
    CHECK(wrong_pin.err.find("SHA-256") != std::string::npos);
    std::ofstream(svc.rootfs / "bin/added") << "not attested";
    auto tampered = svc.run(svc.start_args("production"));
    CHECK(tampered.exit_code == 125);
    CHECK(tampered.err.find("bin/added") != std::string::npos);
    svc.check_nothing_left();
}

TEST_CASE("production: a service over its --memory is OOM-killed as a whole") {
    require_production_host();
    Service svc("production-oom");
    auto run = run_sandbox({"--service-mode", "production", "--cgroup-parent", svc.cgroup_parent, "--memory", "32m",
                            "--rootfs", svc.rootfs.string(), "--verify-rootfs-attestation", "--", "/bin/nucleus-check",
                            "hog", "256"});
    INFO(run.out << run.err);
    CHECK(run.exit_code == 137);
    CHECK(run.final_event.value("reason", "") == "oom_kill");
    CHECK(checker_value(run.out, "hog") != "done");
    svc.remove_cgroup_parent();
}

TEST_CASE("production: every rule refuses on its own, before anything exists") {
    check_every_rule_refuses("production");
}

TEST_CASE("strict-agent: every rule refuses on its own, before anything exists") {
    check_every_rule_refuses("strict-agent");
}

TEST_CASE(
    "strict-agent and production refuse a delegated cgroup without the memory controller [rule limits-applicable]") {
    require_production_host();
    Service svc("nomem");
    CgroupWithoutMemory cgroup;
    fs::create_directories(svc.dir / "nonroot");
    fs::permissions(svc.dir / "nonroot", fs::perms::all);
    for (const std::string mode : {"strict-agent", "production"}) {
        INFO(mode);
        auto refused = run_sandbox_raw(
            {"/bin/sh",
             "-c",
             "echo $$ >\"$0/cgroup.procs\" && cat /proc/self/cgroup \"$0/cgroup.controllers\" >&2 && exec \"$@\"",
             cgroup.leaf.string(),
             "/usr/bin/setpriv",
             "--reuid",
             "65534",
             "--regid",
             "65534",
             "--clear-groups",
             "/usr/bin/env",
             "NUCLEUS_STATE_DIR=" + (svc.dir / "nonroot/state").string(),
             NUCLEUS_BINARY,
             "run",
             "--service-mode",
             mode,
             "--memory",
             "64m",
             "--rootfs",
             svc.rootfs.string(),
             "--",
             "/bin/true"});
        INFO(refused.out << refused.err);
        CHECK(refused.exit_code == 125);
        CHECK(refused.err.find("[rule limits-applicable]") != std::string::npos);
        CHECK(refused.err.find("memory") != std::string::npos);
        CHECK_FALSE(cgroup.has_children());
    }
}
