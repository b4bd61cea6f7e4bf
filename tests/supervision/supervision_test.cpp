// nucleus run as a user sees it: exit codes, signals, timeouts, output,
// events, logs, the filesystem promises, and that nothing is left behind,
// also after bad input and after the supervisor is killed.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "../kernel/sandbox_run.hpp"
#include "host_state.hpp"

using namespace nucleus::kernel_lane;
using nucleus::tests::host_state;
namespace fs = std::filesystem;

extern char** environ;

namespace {

void require_root() {
    if (::geteuid() != 0) SKIP("needs root (user namespaces with full id maps, cgroups)");
}

struct TempDir {
    fs::path path;
    explicit TempDir(const std::string& tag) {
        path = fs::temp_directory_path() / ("nucleus-sup-" + tag + "-" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

// A nucleus process running in the background, output to files.
struct Background {
    pid_t pid = -1;
    std::string events;
};

Background start(std::vector<std::string> args, const std::string& events) {
    std::vector<std::string> argv = {NUCLEUS_BINARY, "run", "--events-jsonl",
                                     events,         "-v",  std::string(NUCLEUS_CHECKER_DIR) + ":/checker:ro"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    Background bg{-1, events};
    REQUIRE(::posix_spawn(&bg.pid, raw[0], &actions, nullptr, raw.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    return bg;
}

// Waits (bounded) until the events file has a start record.
void wait_for_start(const Background& bg) {
    for (int i = 0; i < 500; ++i) {
        std::ifstream events(bg.events);
        for (std::string line; std::getline(events, line);)
            if (line.find("\"event\":\"start\"") != std::string::npos) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL("the sandbox did not start within 10 s");
}

int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

SandboxRun checker(std::vector<std::string> flags, std::vector<std::string> command) {
    flags.push_back("--");
    flags.push_back("/checker/nucleus-check");
    flags.insert(flags.end(), command.begin(), command.end());
    return run_sandbox(flags);
}

}  // namespace

TEST_CASE("exit codes follow the workload and Docker's conventions") {
    require_root();
    CHECK(checker({}, {"exit", "3"}).exit_code == 3);
    // A PID namespace's init cannot be killed from inside it, so a child
    // kills itself and the shell reports it the shell's way.
    auto child_killed = run_sandbox({"--", "/bin/sh", "-c", "/checker/nucleus-check kill-self 9; exit $?"});
    CHECK(child_killed.exit_code == 137);
    auto missing = run_sandbox({"--", "/no/such/program"});
    CHECK(missing.exit_code == 127);
    CHECK(missing.err.find("No such file or directory") != std::string::npos);
    CHECK(missing.final_event.value("reason", "") == "not_found");
    auto not_exec = run_sandbox({"--", "/etc/passwd"});
    CHECK(not_exec.exit_code == 126);
    CHECK(not_exec.final_event.value("reason", "") == "cannot_execute");
}

TEST_CASE("a sandbox whose PID 1 is killed by a signal exits 128+N") {
    require_root();
    TempDir dir("killed");
    auto bg = start({"--", "/checker/nucleus-check", "sleep", "60"}, (dir.path / "events").string());
    wait_for_start(bg);
    std::ifstream events(bg.events);
    std::string line;
    std::getline(events, line);
    auto record = nlohmann::json::parse(line);
    ::kill(record.at("pid").get<pid_t>(), SIGKILL);  // from the host, as an OOM killer or an operator would
    CHECK(wait_exit(bg.pid) == 137);
    std::string last;
    for (std::ifstream again(bg.events); std::getline(again, line);) last = line;
    CHECK(nlohmann::json::parse(last).value("reason", "") == "signal");
}

TEST_CASE("a timeout kills the whole sandbox and exits 124") {
    require_root();
    auto before = host_state();
    auto run = checker({"--timeout", "0.5"}, {"fork-sleep", "3", "60"});
    CHECK(run.exit_code == 124);
    CHECK(run.final_event.value("reason", "") == "timeout");
    CHECK(run.final_event.at("cleanup").value("ok", false));
    CHECK(host_state() == before);
}

TEST_CASE("SIGTERM to nucleus reaches the sandbox; an init without a handler is killed: 143") {
    require_root();
    TempDir dir("sigterm");
    auto before = host_state();
    auto bg = start({"--", "/checker/nucleus-check", "sleep", "60"}, (dir.path / "events").string());
    wait_for_start(bg);
    ::kill(bg.pid, SIGTERM);
    CHECK(wait_exit(bg.pid) == 143);
    CHECK(host_state() == before);
}

TEST_CASE("a reader of nucleus's output that goes away ends the workload, not the supervisor") {
    require_root();
    TempDir dir("sigpipe");
    auto before = host_state();
    auto events = (dir.path / "events").string();
    auto run = run_sandbox_raw(
        {"/bin/sh", "-c",
         std::string(NUCLEUS_BINARY) + " run --events-jsonl " + events + " -- /bin/sh -c yes | head -1"});
    CHECK(run.out == "y\n");
    std::string last, line;
    for (std::ifstream in(events); std::getline(in, line);) last = line;
    REQUIRE_FALSE(last.empty());
    auto exit_record = nlohmann::json::parse(last);
    CHECK(exit_record.value("exit_code", 0) == 128 + SIGPIPE);  // the workload's own SIGPIPE
    CHECK(exit_record.at("cleanup").value("ok", false));
    CHECK(host_state() == before);
}

TEST_CASE("children left behind by PID 1 die with it") {
    require_root();
    auto before = host_state();
    auto run = run_sandbox({"--", "/bin/sh", "-c", "sleep 60 & sleep 60 & exit 0"});
    CHECK(run.exit_code == 0);
    CHECK(host_state() == before);
}

TEST_CASE("output arrives complete, on stdout and stderr or in --log-dir") {
    require_root();
    auto big = checker({}, {"print", "10485760"});
    CHECK(big.exit_code == 0);
    CHECK(big.out.size() == 10485761);
    auto err = checker({}, {"stderr", "to-stderr"});
    CHECK(err.err.find("to-stderr\n") != std::string::npos);
    TempDir logs("logs");
    auto logged = checker({"--log-dir", logs.path.string(), "--name", "logged"}, {"print", "1000"});
    CHECK(logged.exit_code == 0);
    CHECK(logged.out.empty());
    CHECK(fs::file_size(logs.path / "logged.stdout.log") == 1001);
    CHECK(fs::exists(logs.path / "logged.stderr.log"));
}

TEST_CASE("events: a start record with the isolation applied and an exit record") {
    require_root();
    auto run = checker({"--name", "evented"}, {"exit", "0"});
    REQUIRE(run.events.size() >= 2);
    const auto& s = run.events.front();
    CHECK(s.value("event", "") == "start");
    CHECK(s.value("name", "") == "evented");
    CHECK(s.at("pid").get<int>() > 0);
    auto ns = s.at("namespaces");
    for (const char* n : {"user", "mount", "pid", "ipc", "uts", "cgroup", "network"})
        CHECK(std::find(ns.begin(), ns.end(), n) != ns.end());
    CHECK(s.at("seccomp").value("enforced", false));
    CHECK(s.at("landlock").contains("enforced"));
    CHECK(s.at("capabilities").value("no_new_privs", false));
    const auto& e = run.final_event;
    CHECK(e.value("exit_code", -1) == 0);
    CHECK(e.value("reason", "") == "exit");
    CHECK(e.at("wall_ms").get<double>() > 0);
    CHECK(e.at("cleanup").value("ok", false));
}

TEST_CASE("environment, working directory, hostname and user are as asked") {
    require_root();
    TempDir dir("env");
    std::ofstream(dir.path / "env") << "FROM_FILE=1\n";
    auto env = checker({"-e", "FOO=bar", "--env-file", (dir.path / "env").string()}, {"env"});
    CHECK(env.out.find("FOO=bar\n") != std::string::npos);
    CHECK(env.out.find("FROM_FILE=1\n") != std::string::npos);
    CHECK(env.out.find("HOME=/home/agent\n") != std::string::npos);
    CHECK(checker_value(checker({"-w", "/tmp"}, {"cwd"}).out, "cwd") == "/tmp");
    CHECK(checker_value(checker({"--hostname", "box-1"}, {"status"}).out, "hostname") == "box-1");
    CHECK(checker_value(checker({"-u", "0:0"}, {"ids"}).out, "uid") == "0");
}

TEST_CASE("the workspace is noexec unless --workspace-exec") {
    require_root();
    TempDir ws("ws");
    fs::permissions(ws.path, fs::perms::all);  // writable by the sandbox's mapped user
    auto copied = checker({"--workspace", ws.path.string()}, {"copyself", "/workspace"});
    REQUIRE(checker_value(copied.out, "copy") == "ok");
    auto refused = checker({"--workspace", ws.path.string()}, {"exec", "/workspace/nucleus-check-copy"});
    CHECK(checker_value(refused.out, "exec") == "EACCES");
    auto allowed = run_sandbox(
        {"--workspace", ws.path.string(), "--workspace-exec", "--", "/workspace/nucleus-check-copy", "exit", "7"});
    CHECK(allowed.exit_code == 7);
}

TEST_CASE("Landlock refuses what mount flags and permissions would allow") {
    require_root();
    // As root in the sandbox, /dev (a tmpfs owned by it) is writable by DAC
    // and by mount flags; Landlock grants /dev no file creation.
    auto run = checker({"-u", "0:0"}, {"write", "/dev/newfile"});
    auto start = run.events.empty() ? nlohmann::json() : run.events.front();
    if (!start.is_null() && !start.at("landlock").value("enforced", false))
        SKIP("Landlock is not enforced on this host");
    CHECK(checker_value(run.out, "write") == "EACCES");
    CHECK(checker_value(checker({"-u", "0:0"}, {"write", "/tmp/file"}).out, "write") == "ok");
}

TEST_CASE("volumes and the context honour ro and rw; copy-in-out syncs back") {
    require_root();
    TempDir data("data"), ctx("ctx"), ws("copy");
    std::ofstream(ctx.path / "input.txt") << "context";
    auto ro = checker({"-v", data.path.string() + ":/data:ro"}, {"write", "/data/x"});
    CHECK(checker_value(ro.out, "write") == "EROFS");
    fs::permissions(data.path, fs::perms::all);
    auto rw = checker({"-v", data.path.string() + ":/data:rw"}, {"write", "/data/x"});
    CHECK(checker_value(rw.out, "write") == "ok");
    CHECK(fs::exists(data.path / "x"));
    auto context = checker({"--context", ctx.path.string()}, {"write", "/context/input.txt"});
    CHECK(checker_value(context.out, "write") == "EROFS");
    CHECK(checker_value(checker({"--context", ctx.path.string()}, {"read", "/context/input.txt"}).out, "read") == "ok");
    auto synced = run_sandbox({"--workspace", ws.path.string(), "--workspace-mode", "copy-in-out", "--", "/bin/sh",
                               "-c", "echo made-inside > /workspace/new.txt"});
    CHECK(synced.exit_code == 0);
    CHECK(fs::exists(ws.path / "new.txt"));
}

TEST_CASE("bad flags and documents exit 125 with a specific message and leave nothing behind") {
    require_root();
    TempDir dir("bad");
    std::ofstream(dir.path / "unknown.json") << R"({"command": ["/bin/true"], "bogus": 1})";
    std::ofstream(dir.path / "broken.json") << R"({"command": ["/bin/true"],)";
    std::ofstream(dir.path / "broken.toml") << "command = [\n";
    std::ofstream(dir.path / "wrongtype.toml") << "command = [\"/bin/true\"]\ntimeout = \"soon\"\n";
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--rootfs", "/no/such/dir", "--", "true"}, "rootfs (--rootfs): \"/no/such/dir\""},
        {{"--rootfs", "/", "--", "true"}, "cannot be a rootfs"},
        {{"--workspace", "/no/such/dir", "--", "true"}, "workspace (--workspace)"},
        {{"--workspace-mode", "copy-in-out", "--", "true"}, "needs --workspace"},
        {{"--workspace", "/tmp", "--workspace-mode", "mirror", "--", "true"},
         "must be bind-rw, bind-ro or copy-in-out"},
        {{"-v", "/no/such/src:/data", "--", "true"}, "source \"/no/such/src\""},
        {{"-v", "/tmp:relative", "--", "true"}, "must be an absolute path"},
        {{"-v", "/tmp:/proc/x", "--", "true"}, "runtime-managed"},
        {{"-v", "/tmp:/data:rx", "--", "true"}, "mode must be ro or rw"},
        {{"--network", "bridged", "--", "true"}, "must be none, host, egress or bridge"},
        {{"-u", "root", "--", "true"}, "not a numeric id"},
        {{"-u", "70000", "--", "true"}, "outside the sandbox's range"},
        {{"--cap-add", "CAP_FLY", "--", "true"}, "unknown capability"},
        {{"--ulimit", "nofile=10:5", "--", "true"}, "soft limit above hard"},
        {{"--ulimit", "cores=1", "--", "true"}, "unknown limit"},
        {{"--timeout", "-1", "--", "true"}, "positive"},
        {{"--hostname", "bad host", "--", "true"}, "not a valid hostname"},
        {{"--events-fd", "977", "--", "true"}, "not an open descriptor"},
        {{"--memory", "12parsecs", "--", "true"}, "unknown unit"},
        {{"--pids", "0", "--", "true"}, "from 1"},
        {{"--service-mode", "paranoid", "--", "true"}, "must be agent, strict-agent or production"},
        {{"--strict-agent", "--network", "host", "--", "true"}, "[rule no-host-network]"},
        {{"--service-mode", "production", "--", "true"}, "[rule "},
        {{"--seccomp-mode", "trace", "--", "true"}, "needs --seccomp-log"},
        {{"--caps-policy-sha256", std::string(64, 'a'), "--", "true"}, "needs --caps-policy"},
        {{"--config", (dir.path / "unknown.json").string()}, "unknown setting \"bogus\""},
        {{"--config", (dir.path / "broken.json").string()}, "invalid JSON"},
        {{"--config", (dir.path / "broken.toml").string()}, "broken.toml:"},
        {{"--config", (dir.path / "wrongtype.toml").string()}, "must be a number of seconds"},
        {{"--"}, "no command given"},
        {{"--no-such-flag", "--", "true"}, "--no-such-flag"},
    };
    auto before = host_state();
    for (const auto& [args, expected] : cases) {
        std::vector<std::string> argv = {NUCLEUS_BINARY, "run"};
        argv.insert(argv.end(), args.begin(), args.end());
        std::string joined;
        for (const auto& a : args) joined += a + " ";
        INFO("nucleus run " << joined);
        auto run = run_sandbox_raw(argv);
        CHECK(run.exit_code == 125);
        CHECK(run.err.find(expected) != std::string::npos);
        CHECK(run.err.find("nucleus: error:") != std::string::npos);
    }
    CHECK(host_state() == before);
}

TEST_CASE("a supervisor killed mid-way: its sandbox dies, and the next run or gc cleans up") {
    require_root();
    TempDir dir("crash");
    // A private state directory: any other `nucleus run` on the host would
    // otherwise collect the dead record before this test looks at it.
    struct PrivateState {
        explicit PrivateState(const fs::path& p)
            : saved(std::getenv("NUCLEUS_STATE_DIR") ? std::getenv("NUCLEUS_STATE_DIR") : "") {
            ::setenv("NUCLEUS_STATE_DIR", p.c_str(), 1);
        }
        ~PrivateState() {
            saved.empty() ? ::unsetenv("NUCLEUS_STATE_DIR") : ::setenv("NUCLEUS_STATE_DIR", saved.c_str(), 1);
        }
        std::string saved;
    } private_state(dir.path / "state");
    auto before = host_state();
    auto bg = start({"--", "/checker/nucleus-check", "sleep", "60"}, (dir.path / "events").string());
    wait_for_start(bg);
    ::kill(bg.pid, SIGKILL);
    wait_exit(bg.pid);
    // PDEATHSIG takes PID 1, and with it the PID namespace.
    for (int i = 0; i < 250 && host_state().sandbox_processes != before.sandbox_processes; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto after_kill = host_state();
    CHECK(after_kill.sandbox_processes == before.sandbox_processes);
    CHECK(after_kill.records == before.records + 1);  // its record (and cgroup) wait for gc
    auto gc = run_sandbox_raw({NUCLEUS_BINARY, "gc"});
    CHECK(gc.exit_code == 0);
    CHECK(gc.out.find("removed 1 stale sandbox") != std::string::npos);
    CHECK(host_state() == before);
}

// Processes still inside the cgroups that this state directory's records
// name (a child stuck before exec shows nucleus's own command line there).
// Only our own records: other sandboxes may be running on the host.
int processes_in_recorded_cgroups(const fs::path& state) {
    int n = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(state / "sandboxes", ec)) {
        if (entry.path().extension() != ".json") continue;
        std::ifstream in(entry.path());
        auto record = nlohmann::json::parse(in, nullptr, false);
        if (!record.is_object() || !record.contains("cgroup") || !record["cgroup"].is_string()) continue;
        std::ifstream procs(record["cgroup"].get<std::string>() + "/cgroup.procs");
        for (std::string line; std::getline(procs, line);) ++n;
    }
    return n;
}

TEST_CASE("a supervisor killed at any moment of setup leaves no child behind") {
    require_root();
    TempDir dir("setup-kill");
    struct PrivateState {
        explicit PrivateState(const fs::path& p)
            : saved(std::getenv("NUCLEUS_STATE_DIR") ? std::getenv("NUCLEUS_STATE_DIR") : "") {
            ::setenv("NUCLEUS_STATE_DIR", p.c_str(), 1);
        }
        ~PrivateState() {
            saved.empty() ? ::unsetenv("NUCLEUS_STATE_DIR") : ::setenv("NUCLEUS_STATE_DIR", saved.c_str(), 1);
        }
        std::string saved;
    } private_state(dir.path / "state");
    auto before = host_state();
    for (int delay_us : {0, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000}) {
        auto bg = start({"--", "/checker/nucleus-check", "sleep", "60"}, (dir.path / "events").string());
        std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
        ::kill(bg.pid, SIGKILL);
        wait_exit(bg.pid);
    }
    // Before exec a child reads EOF from its dead parent; after, PDEATHSIG.
    int left = 0;
    for (int i = 0; i < 100 && (left = processes_in_recorded_cgroups(dir.path / "state")) > 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(left == 0);
    CHECK(run_sandbox_raw({NUCLEUS_BINARY, "gc"}).exit_code == 0);
    // Killed tasks leave their cgroup before they are reaped; give the
    // kernel a moment to finish.
    auto after = host_state();
    for (int i = 0; i < 100 && after.sandbox_processes != before.sandbox_processes; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        after = host_state();
    }
    INFO("before: " << before.describe() << "\nafter:  " << after.describe());
    CHECK(after == before);
}

TEST_CASE("configs: TOML and --config-fd give the same request as flags") {
    require_root();
    TempDir dir("config");
    std::ofstream(dir.path / "run.toml") << "hostname = \"from-toml\"\ncommand = [\"/bin/hostname\"]\n";
    auto toml = run_sandbox_raw({NUCLEUS_BINARY, "run", "--config", (dir.path / "run.toml").string()});
    CHECK(toml.exit_code == 0);
    CHECK(toml.out == "from-toml\n");
    // Flags override the document.
    auto overridden = run_sandbox_raw(
        {NUCLEUS_BINARY, "run", "--config", (dir.path / "run.toml").string(), "--hostname", "from-flag"});
    CHECK(overridden.out == "from-flag\n");
}

TEST_CASE("io_uring refused by a seccomp filter: nucleus exits 125 naming the cause") {
    require_root();
    // Nucleus inside a Nucleus sandbox: the default profile refuses io_uring.
    auto bin = fs::path(NUCLEUS_BINARY).parent_path().string();
    // Under ASan the inner nucleus's LeakSanitizer needs ptrace, which the
    // sandbox refuses; leak checking is the outer process's job here.
    auto run = run_sandbox(
        {"-v", bin + ":/nb:ro", "-e", "ASAN_OPTIONS=detect_leaks=0", "--", "/nb/nucleus", "run", "--", "/bin/true"});
    CHECK(run.exit_code == 125);
    CHECK(run.err.find("io_uring is unavailable: a seccomp filter") != std::string::npos);
}

TEST_CASE("an unprivileged caller gets a single-id map and the same isolation") {
    require_root();
    if (::access("/usr/bin/setpriv", X_OK) != 0) SKIP("setpriv is not installed");
    TempDir state("nonroot");
    fs::permissions(state.path, fs::perms::all);  // the unprivileged user creates its state dir inside
    auto run = run_sandbox_raw({"/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
                                "/usr/bin/env", "NUCLEUS_STATE_DIR=" + (state.path / "state").string(), NUCLEUS_BINARY,
                                "run", "-v", std::string(NUCLEUS_CHECKER_DIR) + ":/checker:ro", "--",
                                "/checker/nucleus-check", "status"});
    if (run.exit_code != 0 && run.err.find("Operation not permitted") != std::string::npos)
        SKIP("the kernel refuses unprivileged user namespaces here: " + run.err);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(checker_value(run.out, "uid_map") == "1000 65534 1");
    CHECK(checker_value(run.out, "cap_eff") == "0000000000000000");
    CHECK(checker_value(run.out, "seccomp") == "2");
    CHECK(checker_value(run.out, "no_new_privs") == "1");
}
