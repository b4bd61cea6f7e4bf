// Bad input: every flag and config document is validated before anything is
// created. Each case must exit 125 with "nucleus: error: <specific message>"
// and leave the host exactly as it was.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <algorithm>

#include "harness.hpp"

using namespace nit;

namespace {

// "@T@" in an argument is replaced with the case's scratch directory.
struct BadInput {
    std::string name;
    std::vector<std::string> args;  // after "nucleus run"
    std::string expected;  // substring of stderr
    // A config document written to @T@/<config_name> first (if non-empty).
    std::string config_name = {};
    std::string config = {};
    // Passed as descriptor 3 (from a file) or as stdin (a pipe).
    std::optional<std::string> fd3 = {};
    std::optional<std::string> stdin_data = {};
};

std::string substitute(std::string text, const std::string& dir) {
    for (size_t pos; (pos = text.find("@T@")) != std::string::npos;) text.replace(pos, 3, dir);
    return text;
}

const std::vector<BadInput>& flag_cases() {
    static const std::vector<BadInput> cases = {
        {"nonexistent rootfs",
         {"--rootfs", "@T@/missing", "--", "/bin/true"},
         "rootfs (--rootfs): \"@T@/missing\": No such file or directory"},
        {"rootfs is a file", {"--rootfs", "@T@/file", "--", "/bin/true"}, "is not a directory"},
        {"nonexistent workspace",
         {"--workspace", "@T@/missing", "--", "/bin/true"},
         "workspace (--workspace): \"@T@/missing\": No such file"},
        {"nonexistent volume source",
         {"-v", "@T@/missing:/data", "--", "/bin/true"},
         "volume (--volume): source \"@T@/missing\": No such file"},
        {"nonexistent context", {"--context", "@T@/missing", "--", "/bin/true"}, "context (--context)"},
        {"bad --network",
         {"--network", "bridged", "--", "/bin/true"},
         "must be none, host, egress or bridge, got \"bridged\""},
        {"empty --network", {"--network", "", "--", "/bin/true"}, "must be none, host, egress or bridge"},
        {"non-numeric --user", {"--user", "agent", "--", "/bin/true"}, "\"agent\" is not a numeric id"},
        {"--user out of range", {"--user", "70000", "--", "/bin/true"}, "outside the sandbox's range 0-65535"},
        {"--user gid out of range", {"--user", "1000:65536", "--", "/bin/true"}, "outside the sandbox's range"},
        {"negative --user", {"--user", "-1", "--", "/bin/true"}, "is not a numeric id"},
        {"bad --userns", {"--userns", "host", "--", "/bin/true"}, "must be auto or keep-id"},
        {"keep-id with uid 0", {"--userns", "keep-id", "--user", "0", "--", "/bin/true"}, "would map the host's root"},
        {"--workspace-mode without --workspace",
         {"--workspace-mode", "copy-in-out", "--", "/bin/true"},
         "needs --workspace"},
        {"bad --workspace-mode",
         {"--workspace", "@T@", "--workspace-mode", "overlay", "--", "/bin/true"},
         "must be bind-rw, bind-ro or copy-in-out"},
        {"relative volume target",
         {"-v", "@T@:data", "--", "/bin/true"},
         "\"data\" must be an absolute path in the sandbox"},
        {"volume over /proc", {"-v", "@T@:/proc", "--", "/bin/true"}, "target /proc is a runtime-managed mount"},
        {"volume over /proc via ..",
         {"-v", "@T@:/x/../proc", "--", "/bin/true"},
         "target /proc is a runtime-managed mount"},
        {"volume inside /proc", {"-v", "@T@:/proc/sys", "--", "/bin/true"}, "inside a runtime-managed mount"},
        {"volume over /", {"-v", "@T@:/", "--", "/bin/true"}, "target / is reserved"},
        {"volume target used twice",
         {"-v", "@T@:/data", "-v", "@T@:/data", "--", "/bin/true"},
         "target /data is reserved or used twice"},
        {"bad volume mode", {"-v", "@T@:/data:rx", "--", "/bin/true"}, "mode must be ro or rw, got \"rx\""},
        {"volume without target", {"-v", "@T@", "--", "/bin/true"}, "is not SRC:DST[:ro|rw]"},
        {"unknown --cap-add",
         {"--cap-add", "CAP_TIME_TRAVEL", "--", "/bin/true"},
         "unknown capability \"CAP_TIME_TRAVEL\""},
        {"unknown --ulimit", {"--ulimit", "bogus=1", "--", "/bin/true"}, "unknown limit \"bogus\""},
        {"non-numeric --ulimit",
         {"--ulimit", "nofile=many", "--", "/bin/true"},
         "soft limit \"many\" is not a whole number"},
        {"--ulimit soft above hard",
         {"--ulimit", "nofile=10:5", "--", "/bin/true"},
         "soft limit above hard limit (10 > 5)"},
        {"unlimited nofile",
         {"--ulimit", "nofile=-1", "--", "/bin/true"},
         "nofile cannot be unlimited (-1): the kernel caps open files at fs.nr_open"},
        {"negative --ulimit", {"--ulimit", "nproc=-5", "--", "/bin/true"}, "soft limit \"-5\" is negative"},
        {"volume inside /usr",
         {"-v", "@T@:/usr/local/data", "--", "/bin/true"},
         "target /usr/local/data is inside the read-only system bind /usr"},
        {"--ulimit without value", {"--ulimit", "nofile", "--", "/bin/true"}, "is not NAME=SOFT[:HARD]"},
        {"negative --timeout", {"--timeout", "-1", "--", "/bin/true"}, "must be a positive number of seconds"},
        {"zero --timeout", {"--timeout", "0", "--", "/bin/true"}, "must be a positive number of seconds"},
        {"non-numeric --timeout", {"--timeout", "soon", "--", "/bin/true"}, "--timeout"},
        {"empty command", {}, "no command given"},
        {"empty command after --", {"--"}, "no command given"},
        {"bad --events-fd", {"--events-fd", "99", "--", "/bin/true"}, "99 is not an open descriptor"},
        {"negative --events-fd", {"--events-fd", "-3", "--", "/bin/true"}, "is not an open descriptor"},
        {"--events-jsonl in a missing directory",
         {"--events-jsonl", "@T@/missing/events.jsonl", "--", "/bin/true"},
         "does not exist"},
        {"--log-dir is a file", {"--log-dir", "@T@/file", "--", "/bin/true"}, "exists and is not a directory"},
        {"nonexistent --env-file",
         {"--env-file", "@T@/missing.env", "--", "/bin/true"},
         "env_file (--env-file): open @T@/missing.env"},
        {"bad --env-file line",
         {"--env-file", "@T@/bad.env", "--", "/bin/true"},
         "bad.env:2: \"NOT A VAR=1\" is not KEY=VALUE"},
        {"bad --env", {"-e", "=value", "--", "/bin/true"}, "\"=value\" is not KEY=VALUE or KEY"},
        {"bad --hostname", {"--hostname", "no spaces!", "--", "/bin/true"}, "is not a valid hostname"},
        {"relative --workdir", {"-w", "relative/dir", "--", "/bin/true"}, "must be an absolute path in the sandbox"},
        {"bad --name", {"--name", "a/b", "--", "/bin/true"}, "must be 1-128 of [A-Za-z0-9_.-]"},
        {"unknown flag", {"--make-it-fast", "--", "/bin/true"}, "--make-it-fast"},
    };
    return cases;
}

const std::vector<BadInput>& config_cases() {
    static const std::vector<BadInput> cases = {
        {"JSON: unknown key",
         {"--config", "@T@/c.json"},
         "unknown setting \"bogus_key\"",
         "c.json",
         R"({"command": ["/bin/true"], "bogus_key": 1})"},
        {"JSON: flag spelled with a dash",
         {"--config", "@T@/c.json"},
         "unknown setting \"workspace-mode\"",
         "c.json",
         R"({"command": ["/bin/true"], "workspace-mode": "bind-ro"})"},
        {"JSON: malformed", {"--config", "@T@/c.json"}, "invalid JSON", "c.json", R"({"command": ["/bin/true"])"},
        {"JSON: trailing garbage",
         {"--config", "@T@/c.json"},
         "invalid JSON",
         "c.json",
         R"({"command": ["/bin/true"]} x)"},
        {"JSON: empty document", {"--config", "@T@/c.json"}, "invalid JSON", "c.json", ""},
        {"JSON: not an object", {"--config", "@T@/c.json"}, "must be an object of settings", "c.json", "[1, 2]"},
        {"JSON: empty command", {"--config", "@T@/c.json"}, "no command given", "c.json", R"({"command": []})"},
        {"JSON: command of numbers",
         {"--config", "@T@/c.json"},
         "command: must be a list of strings",
         "c.json",
         R"({"command": [1, 2]})"},
        {"JSON: volume of the wrong type",
         {"--config", "@T@/c.json"},
         "volume (--volume): must be a list of strings",
         "c.json",
         R"({"command": ["/bin/true"], "volume": 5})"},
        {"JSON: bad value",
         {"--config", "@T@/c.json"},
         "must be none, host, egress or bridge, got \"bogus\"",
         "c.json",
         R"({"command": ["/bin/true"], "network": "bogus"})"},
        {"JSON: bad boolean",
         {"--config", "@T@/c.json"},
         "workspace_exec (--workspace-exec): must be true or false",
         "c.json",
         R"({"command": ["/bin/true"], "workspace_exec": "yes"})"},
        {"JSON: config inside config",
         {"--config", "@T@/c.json"},
         "unknown setting \"config\"",
         "c.json",
         R"({"command": ["/bin/true"], "config": "other.json"})"},
        {"TOML: unknown key",
         {"--config", "@T@/c.toml"},
         "unknown setting \"bogus\"",
         "c.toml",
         "command = [\"/bin/true\"]\nbogus = 2\n"},
        {"TOML: malformed", {"--config", "@T@/c.toml"}, "invalid TOML", "c.toml", "command = [\"/bin/true\"\n"},
        {"TOML: a table is not a setting",
         {"--config", "@T@/c.toml"},
         "unknown setting \"table\"",
         "c.toml",
         "[table]\ncommand = [\"/bin/true\"]\n"},
        {"TOML: timeout of the wrong type",
         {"--config", "@T@/c.toml"},
         "timeout (--timeout): must be a number of seconds",
         "c.toml",
         "command = [\"/bin/true\"]\ntimeout = \"soon\"\n"},
        {"TOML: negative timeout",
         {"--config", "@T@/c.toml"},
         "must be a positive number of seconds",
         "c.toml",
         "command = [\"/bin/true\"]\ntimeout = -3\n"},
        {"unknown config format",
         {"--config", "@T@/c.yaml"},
         "unknown config format \".yaml\"",
         "c.yaml",
         "command: [/bin/true]\n"},
        {"missing config file", {"--config", "@T@/missing.json"}, "reading --config: open @T@/missing.json"},
        {"a flag overrides the config, and is validated",
         {"--config", "@T@/c.json", "--network", "bogus"},
         "must be none, host, egress or bridge, got \"bogus\"",
         "c.json",
         R"({"command": ["/bin/true"], "network": "host"})"},
        {"--config-fd: unknown key",
         {"--config-fd", "3"},
         "unknown setting \"nope\"",
         "",
         "",
         R"({"command": ["/bin/true"], "nope": 1})"},
        {"--config-fd: malformed JSON", {"--config-fd", "3"}, "invalid JSON", "", "", R"({"command": )"},
        {"--config-fd: malformed TOML from a pipe",
         {"--config-fd", "0"},
         "invalid TOML",
         "",
         "",
         std::nullopt,
         "command = [\n"},
        {"--config-fd: not open", {"--config-fd", "77"}, "--config-fd 77"},
    };
    return cases;
}

void check_rejected(const BadInput& c) {
    TempDir dir("bad");
    write_file(dir / "file", "not a directory\n");
    write_file(dir / "bad.env", "GOOD=1\nNOT A VAR=1\n");
    if (!c.config_name.empty()) write_file(dir / c.config_name, c.config);
    SpawnOptions options;
    options.deadline = 20s;
    if (c.fd3) {
        write_file(dir / "fd3", *c.fd3);
        options.fd_files.push_back({3, (dir / "fd3").string(), O_RDONLY});
    }
    options.stdin_data = c.stdin_data;
    std::vector<std::string> args;
    for (const auto& a : c.args) args.push_back(substitute(a, dir.str()));
    // Where a run that got further would leave traces of its own (unless
    // the case is about that very flag: each may be given once).
    auto given = [&](const std::string& flag) { return std::find(args.begin(), args.end(), flag) != args.end(); };
    if (!given("--log-dir")) args.insert(args.begin(), {"--log-dir", (dir / "logs").string()});
    if (!given("--events-jsonl")) args.insert(args.begin(), {"--events-jsonl", (dir / "events.jsonl").string()});
    std::string expected = substitute(c.expected, dir.str());

    // Leftovers are host-wide counts, and other sandboxes (other tests run
    // in parallel, other users) may come and go meanwhile. A rejected
    // request is deterministic, so a real leak shows on every attempt;
    // noise does not survive a few.
    Leftovers before;
    Leftovers after;
    Result r;
    for (int attempt = 0; attempt < 4; ++attempt) {
        std::error_code ec;
        fs::remove_all(dir / "logs", ec);
        fs::remove(dir / "events.jsonl", ec);
        before = count_leftovers();
        r = run_nucleus(args, {}, options);
        after = wait_for_leftovers(before, 1s);
        if (after == before) break;
    }
    INFO(r.describe());
    INFO("expected in stderr: " << expected);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 125);
    CHECK(contains(r.err, "nucleus: error: "));
    CHECK(contains(r.err, expected));
    CHECK(r.out.empty());
    // Nothing was created: no log directory, no events, no host state.
    CHECK_FALSE(fs::exists(dir / "logs"));
    CHECK_FALSE(fs::exists(dir / "events.jsonl"));
    INFO("before: " << before.describe() << "\nafter:  " << after.describe());
    CHECK(after == before);
}

}  // namespace

TEST_CASE("bad flags are refused with exit 125 and a specific message and no traces", "[validation][host-state]") {
    // Validation comes before anything needs privileges: runs as any user.
    REQUIRE(flag_cases().size() >= 25);
    for (const auto& c : flag_cases()) {
        // Unprivileged, keep-id maps container uid 0 to the caller: allowed.
        if (c.name == "keep-id with uid 0" && ::geteuid() != 0) continue;
        DYNAMIC_SECTION(c.name) { check_rejected(c); }
    }
}

TEST_CASE("bad config documents (JSON and TOML and config-fd) are refused the same way",
          "[validation][config][host-state]") {
    for (const auto& c : config_cases()) {
        DYNAMIC_SECTION(c.name) { check_rejected(c); }
    }
}

TEST_CASE("good config documents run (JSON and TOML and config-fd) and flags override them", "[validation][config]") {
    require_root();
    TempDir dir("cfg");
    write_file(
        dir / "run.json",
        R"({"hostname": "from-json", "env": ["A=json"], "command": ["/bin/sh", "-c", "echo $A $(hostname); exit 7"]})");
    write_file(dir / "run.toml",
               "hostname = \"from-toml\"\nenv = [\"A=toml\"]\ncommand = [\"/bin/sh\", \"-c\", \"echo $A $(hostname); "
               "exit 8\"]\n");

    auto json = run_nucleus({"--config", (dir / "run.json").string()}, {});
    INFO(json.describe());
    CHECK(json.exit_code == 7);
    CHECK(json.out == "json from-json\n");

    auto toml = run_nucleus({"--config", (dir / "run.toml").string()}, {});
    INFO(toml.describe());
    CHECK(toml.exit_code == 8);
    CHECK(toml.out == "toml from-toml\n");

    SpawnOptions fd;
    fd.fd_files.push_back({3, (dir / "run.json").string(), O_RDONLY});
    auto from_fd = run_nucleus({"--config-fd", "3"}, {}, fd);
    INFO(from_fd.describe());
    CHECK(from_fd.exit_code == 7);
    CHECK(from_fd.out == "json from-json\n");

    auto overridden = run_nucleus({"--config", (dir / "run.toml").string(), "--hostname", "from-flag"}, {});
    INFO(overridden.describe());
    CHECK(overridden.exit_code == 8);
    CHECK(overridden.out == "toml from-flag\n");
}

// Volume targets on, inside or over the default root's read-only system
// binds (/usr; /bin, /lib as merged-/usr symlinks) once failed only after
// the cgroup, record and child existed ("setup_failed", "mount /bin is
// missing"); validation refuses them now, naming the flag.
TEST_CASE("volume targets the default root cannot take are refused by validation", "[validation]") {
    require_root();
    for (const char* target : {"/usr", "/bin", "/lib"}) {
        // Only meaningful where the default root has these as the host does.
        if (std::string(target) != "/usr" && !fs::is_symlink(target)) continue;
        DYNAMIC_SECTION("target " << target) {
            TempDir dir("bad");
            auto r = run_nucleus({"--events-jsonl", (dir / "events.jsonl").string(), "-v", dir.str() + ":" + target},
                                 {"/bin/true"});
            INFO(r.describe());
            CHECK(r.exit_code == 125);
            CHECK(contains(r.err, "volume (--volume)"));
            CHECK_FALSE(contains(r.err, "verifying the sandbox"));
            // Refused before anything was created: not even a start.
            CHECK_FALSE(fs::exists(dir / "events.jsonl"));
        }
    }
}

// A rootfs the sandbox's ids cannot traverse once failed at setup with a
// message naming the runtime's staging directory; validation names the
// rootfs and says why.
TEST_CASE("a rootfs the sandbox cannot traverse is refused naming it", "[validation]") {
    require_root();
    TempDir dir("rootfs-mode");
    fs::path rootfs = dir / "rootfs";
    fs::create_directories(rootfs / "bin");
    fs::permissions(rootfs, fs::perms(0700));
    auto r =
        run_nucleus({"--events-jsonl", (dir / "events.jsonl").string(), "--rootfs", rootfs.string()}, {"/bin/true"});
    INFO(r.describe());
    CHECK(r.exit_code == 125);
    CHECK(contains(r.err, "rootfs (--rootfs): \"" + rootfs.string() + "\" is not traversable by the sandbox's uid"));
    CHECK(contains(r.err, "(mode 0700, owner 0:0)"));
    CHECK_FALSE(contains(r.err, "staging"));
    CHECK_FALSE(fs::exists(dir / "events.jsonl"));
}
