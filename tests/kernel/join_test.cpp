// spawn_joined against a real sandbox: a sandbox's first process is spawned
// through the isolation API (sleep 30), then further processes join it and
// report what they see from inside; the test compares with the outside view.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch_test_macros.hpp>

#include "io/reactor.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/join.hpp"
#include "isolation/join_plan.hpp"
#include "isolation/spawn.hpp"

using namespace nucleus;
using namespace nucleus::isolation;

namespace {

template <class T>
asio::awaitable<void> store_result(asio::awaitable<T> task, std::optional<T>* out) {
    out->emplace(co_await std::move(task));
}

template <class T>
T run_on_reactor(asio::awaitable<T> task) {
    auto ctx = io::make_reactor();
    std::optional<T> result;
    asio::co_spawn(ctx, store_result(std::move(task), &result), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    ctx.run();
    REQUIRE(result);
    return std::move(*result);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The value of one "Key:\tvalue" line of a /proc status file.
std::string status_line(const std::string& path, const std::string& key) {
    std::istringstream in(read_file(path));
    for (std::string line; std::getline(in, line);)
        if (line.starts_with(key + ":\t")) return line.substr(key.size() + 2);
    return "";
}

std::string readlink_str(const std::string& path) {
    char buf[256];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// Reads from fd until `marker` appears (or 20 s pass).
std::string read_until(int fd, const std::string& marker) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (out.find(marker) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 500) <= 0) continue;
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::map<std::string, std::string> key_values(const std::string& out) {
    std::map<std::string, std::string> kv;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        auto eq = line.find('=');
        if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return kv;
}

// A sandbox whose PID 1 sleeps, in a cgroup of its own; torn down by the destructor.
struct Sandbox {
    std::string cgroup_path;
    io::unique_fd cgroup_fd;
    std::string staging;
    std::unique_ptr<LaunchPlan> plan;
    io::ProcessHandle pid1;
    io::unique_fd devnull;

    Sandbox() {
        auto mount = find_cgroup2_mount();
        REQUIRE(mount);
        cgroup_path = *mount + "/nucleus-join-test-" + std::to_string(::getpid());
        REQUIRE(::mkdir(cgroup_path.c_str(), 0755) == 0);
        cgroup_fd = io::unique_fd(::open(cgroup_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        REQUIRE(cgroup_fd.valid());
        char dir[] = "/tmp/nucleus-join-XXXXXX";
        REQUIRE(::mkdtemp(dir));
        staging = dir;
        devnull = io::unique_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));

        LaunchRequest request;
        request.staging_dir = staging;
        request.hostname = "jointest";
        request.maps.method = UserNamespaceMaps::Method::Direct;
        request.maps.uid = {{0, 2'100'000'000u, 65536}};
        request.maps.gid = {{0, 2'100'000'000u, 65536}};
        request.argv = {"/bin/sleep", "30"};
        request.env = {"PATH=/usr/bin:/bin", "HOME=/home/agent", "SECRET_ONLY_IN_PID1=1"};
        // Rules that make Landlock observable: /tmp is writable but, unlike
        // the home directory, not executable (both mounts allow exec;
        // rights accumulate down the tree, so / grants no execute).
        int abi = landlock_abi();
        request.landlock_rules = std::vector<std::pair<std::string, uint64_t>>{
            {"/", landlock_rights(LandlockAccess::ReadOnly, abi)},
            {"/usr", landlock_rights(LandlockAccess::ReadExec, abi)},
            {"/bin", landlock_rights(LandlockAccess::ReadExec, abi)},
            {"/lib", landlock_rights(LandlockAccess::ReadExec, abi)},
            {"/lib64", landlock_rights(LandlockAccess::ReadExec, abi)},
            {"/proc", landlock_rights(LandlockAccess::Device, abi)},
            {"/dev", landlock_rights(LandlockAccess::Device, abi)},
            {"/tmp", landlock_rights(LandlockAccess::ReadWrite, abi)},
            {"/home/agent", landlock_rights(LandlockAccess::ReadWriteExec, abi)}};
        for (int i = 0; i < 3; ++i) request.stdio[i] = devnull.get();
        auto built = LaunchPlan::build(request);
        REQUIRE(built);
        plan = std::move(*built);
        const LaunchPlan* p = plan.get();
        SpawnRequest spawn;
        spawn.plan = &plan->child;
        spawn.namespaces = plan->namespaces;
        spawn.cgroup_fd = cgroup_fd.get();
        spawn.maps = &plan->maps;
        spawn.verify = [p](pid_t pid) { return verify_child(pid, *p); };
        auto result = run_on_reactor(spawn_sandbox(std::move(spawn)));
        if (!result.ok()) FAIL(result.failure().error.message);
        pid1 = std::move(result.value().process);
    }
    ~Sandbox() {
        if (pid1.valid()) {
            (void)pid1.send_signal(SIGKILL);
            (void)run_on_reactor(pid1.wait_exit());
        }
        // The cgroup empties asynchronously after the last exit.
        for (int i = 0; i < 100 && ::rmdir(cgroup_path.c_str()) < 0 && errno == EBUSY; ++i) ::usleep(20000);
        ::rmdir(staging.c_str());
    }

    JoinRequest join(std::vector<std::string> argv, int out) const {
        JoinRequest r;
        r.target_pidfd = pid1.pidfd();
        r.target_pid = pid1.pid();
        r.cgroup_fd = cgroup_fd.get();
        r.plan = plan.get();
        r.argv = std::move(argv);
        r.stdio[0] = devnull.get();
        r.stdio[1] = out;
        r.stdio[2] = out;
        return r;
    }
};

const char* probe_script = R"(
for ns in user mnt pid ipc uts net cgroup; do echo ns_$ns=$(readlink /proc/self/ns/$ns); done
grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | sed 's/:[[:space:]]*/=/; s/[[:space:]]\+/ /g'
echo cgroup=$(grep '^0::' /proc/self/cgroup)
echo pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')
echo pid1=$(tr '\0' ' ' < /proc/1/cmdline)
echo cwd=$(pwd)
echo hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)
echo env=$(env | sort | tr '\n' ' ')
cp /bin/true /tmp/t && /tmp/t 2>/dev/null && echo tmp_exec=allowed || echo tmp_exec=denied
cp /bin/true /home/agent/t && /home/agent/t && echo home_exec=allowed || echo home_exec=denied
echo done=1
exec /bin/sleep 30
)";

}  // namespace

TEST_CASE("spawn_joined runs a process inside a running sandbox under its limits") {
    if (::geteuid() != 0) SKIP("needs root (id maps for a 65536-id range)");
    Sandbox sb;
    auto pipe = io::make_pipe();
    REQUIRE(pipe);

    JoinFailure failure;
    auto joined = run_on_reactor(spawn_joined(sb.join({"/bin/sh", "-c", probe_script}, pipe->write.get()), &failure));
    if (!joined) FAIL(joined.error().message);
    io::ProcessHandle proc = std::move(*joined);
    pipe->write.reset();
    std::string out = read_until(pipe->read.get(), "done=1");
    INFO(out);
    auto kv = key_values(out);
    REQUIRE(kv["done"] == "1");

    std::string pid1 = "/proc/" + std::to_string(sb.pid1.pid());
    for (const char* ns : {"user", "mnt", "pid", "ipc", "uts", "net", "cgroup"}) {
        INFO(ns);
        CHECK(kv[std::string("ns_") + ns] == readlink_str(pid1 + "/ns/" + ns));
        CHECK(readlink_str("/proc/" + std::to_string(proc.pid()) + "/ns/" + ns) == readlink_str(pid1 + "/ns/" + ns));
    }
    CHECK(readlink_str("/proc/self/ns/pid") != readlink_str(pid1 + "/ns/pid"));
    CHECK(kv["Uid"] == "1000 1000 1000 1000");
    CHECK(kv["Gid"] == "1000 1000 1000 1000");
    for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
        INFO(set);
        CHECK(kv[set] == "0000000000000000");
    }
    CHECK(kv["NoNewPrivs"] == "1");
    CHECK(kv["Seccomp"] == "2");
    // The same seccomp program as PID 1 (one filter each).
    CHECK(status_line(pid1 + "/status", "Seccomp_filters") == "1");
    CHECK(status_line("/proc/" + std::to_string(proc.pid()) + "/status", "Seccomp_filters") == "1");
    CHECK(kv["cgroup"] == "0::/");  // the root of the sandbox's cgroup namespace...
    std::string outside = read_file("/proc/" + std::to_string(proc.pid()) + "/cgroup");
    CHECK(outside.find("0::/nucleus-join-test-" + std::to_string(::getpid()) + "\n") !=
          std::string::npos);  // ...its cgroup
    CHECK(read_file(sb.cgroup_path + "/cgroup.procs").find(std::to_string(proc.pid()) + "\n") != std::string::npos);
    CHECK(kv["pid1"] == "/bin/sleep 30");
    // Only the sandbox's processes: PID 1, the joined shell and its children.
    std::istringstream pids(kv["pids"]);
    int count = 0;
    for (int pid; pids >> pid; ++count) CHECK(pid < 50);
    CHECK(count >= 2);
    CHECK(count <= 6);
    CHECK(kv["cwd"] == "/home/agent");
    CHECK(kv["hostname"] == "jointest");
    CHECK(kv["env"].find("PATH=/usr/bin:/bin") != std::string::npos);
    CHECK(kv["env"].find("HOME=/home/agent") != std::string::npos);
    CHECK(kv["env"].find("SECRET_ONLY_IN_PID1") == std::string::npos);
    CHECK(kv["tmp_exec"] == "denied");  // Landlock: /tmp has no execute right
    CHECK(kv["home_exec"] == "allowed");
    // The joined process is our child: PPid from the host's view, and wait_exit reaps it.
    CHECK(read_file("/proc/" + std::to_string(proc.pid()) + "/status")
              .find("PPid:\t" + std::to_string(::getpid()) + "\n") != std::string::npos);
    REQUIRE(proc.send_signal(SIGKILL));
    auto status = run_on_reactor(proc.wait_exit());
    REQUIRE(status);
    CHECK(status->signaled);
    CHECK(status->value == SIGKILL);
    CHECK(::kill(proc.pid(), 0) < 0);  // reaped
}

TEST_CASE("spawn_joined: exit codes, workdir and env overrides, failures named by step") {
    if (::geteuid() != 0) SKIP("needs root (id maps for a 65536-id range)");
    Sandbox sb;
    {
        auto pipe = io::make_pipe();
        REQUIRE(pipe);
        JoinRequest r = sb.join({"sh", "-c", "echo cwd=$(pwd) foo=$FOO; exit 7"}, pipe->write.get());
        r.workdir = "/tmp";
        r.env = std::vector<std::string>{"PATH=/bin", "FOO=bar"};
        auto joined = run_on_reactor(spawn_joined(std::move(r)));
        if (!joined) FAIL(joined.error().message);
        pipe->write.reset();
        auto status = run_on_reactor(joined->wait_exit());
        REQUIRE(status);
        CHECK(!status->signaled);
        CHECK(status->value == 7);
        auto kv = key_values(read_until(pipe->read.get(), "\n"));
        CHECK(kv["cwd"] == "/tmp foo=bar");
    }
    {
        JoinFailure failure;
        auto joined = run_on_reactor(spawn_joined(sb.join({"/no/such/program"}, sb.devnull.get()), &failure));
        REQUIRE(!joined);
        CHECK(failure.step == static_cast<uint32_t>(JoinStep::Exec));
        CHECK(failure.child_errno == ENOENT);
        CHECK(joined.error().message.find("executing the command /no/such/program") != std::string::npos);
    }
    {
        JoinFailure failure;
        JoinRequest r = sb.join({"/bin/true"}, sb.devnull.get());
        r.workdir = "/no/such/dir";
        auto joined = run_on_reactor(spawn_joined(std::move(r), &failure));
        REQUIRE(!joined);
        CHECK(failure.step == static_cast<uint32_t>(JoinStep::Workdir));
        CHECK(failure.child_errno == ENOENT);
    }
    // A sandbox whose PID 1 is gone cannot be joined: a clear error, nothing left behind.
    (void)sb.pid1.send_signal(SIGKILL);
    auto status = run_on_reactor(sb.pid1.wait_exit());
    REQUIRE(status);
    JoinFailure failure;
    auto joined = run_on_reactor(spawn_joined(sb.join({"/bin/true"}, sb.devnull.get()), &failure));
    REQUIRE(!joined);
    INFO(joined.error().message);
    CHECK(failure.step != 0);
    sb.pid1 = io::ProcessHandle();
}
