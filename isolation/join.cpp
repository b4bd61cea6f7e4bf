// Joining a running sandbox: two clones and a one-way report pipe.
//
//   P (the daemon, on its reactor): builds the JoinChildPlan (argv, envp,
//     exec candidates, a fresh Landlock ruleset), then
//     clone3(CLONE_VM | CLONE_PIDFD | CLONE_INTO_CGROUP) the intermediate I
//     on a stack of its own, with every signal blocked around the call.
//   I: setns(pidfd, the sandbox's CLONE_NEW* flags) and
//     clone3(CLONE_VM | CLONE_PARENT | CLONE_PARENT_SETTID) the grandchild G
//     on a second stack, then exits. Entering a PID namespace only affects
//     children, hence G; CLONE_PARENT makes G P's child, so P can pidfd_open
//     it race-free (it stays a zombie until P reaps it) and wait for it.
//     The kernel writes G's host pid into the plan before G runs.
//   G: the sandbox's limits, then execve (isolation/join_child.cpp).
//   The report pipe's write end is CLOEXEC: P reads EOF once I has exited
//   and G has exec'd (or died); a Failed record {step, errno, detail} from
//   either ends the join with an error, and P kills and reaps G if it exists.
//   I's exit is awaited through its pidfd. Nothing here blocks the reactor.
//
// Landlock: a ruleset cannot be re-entered and a new domain is needed anyway
// (landlock_restrict_self always makes one), so P creates a fresh ruleset
// with the same handled rights (the sandbox's ABI) and G adds the plan's
// rules itself after setns, opening each path inside the sandbox's mount
// namespace and root as the first process did after pivot_root. Opening them
// in P through /proc/PID/root/... would resolve absolute symlinks inside the
// sandbox against the host's root, with the daemon's privileges.
#include "isolation/join.hpp"

#include "isolation/clone_stack.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <deque>

#include <asio/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "isolation/join_plan.hpp"
#include "isolation/kernel_abi.hpp"
#include "isolation/landlock.hpp"

extern "C" long nucleus_clone3_vm(nucleus::kabi::CloneArgs* args, size_t size, int (*fn)(void*), void* arg);

namespace nucleus::isolation {

namespace {

constexpr size_t join_stack_size = 128 * 1024;

// Storage for every pointer in the JoinChildPlan.
struct JoinStrings {
    std::deque<std::string> strings;
    std::vector<const char*> candidates;
    std::vector<char*> argv;
    std::vector<char*> envp;
    const char* keep(std::string s) { return strings.emplace_back(std::move(s)).c_str(); }
};

std::string env_value(const std::vector<std::string>& env, const std::string& key) {
    for (const auto& e : env)
        if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=')
            return e.substr(key.size() + 1);
    return "";
}

// The workload's PATH and HOME, from the first process's environment.
std::vector<std::string> default_env(const ChildPlan& sb) {
    std::vector<std::string> env;
    for (char* const* e = sb.program.envp; e && *e; ++e) {
        std::string entry = *e;
        if (entry.starts_with("PATH=") || entry.starts_with("HOME=")) env.push_back(std::move(entry));
    }
    return env;
}

void fill_program(JoinStrings& s, const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    const std::string& command = argv[0];
    if (command.find('/') != std::string::npos) {
        s.candidates.push_back(s.keep(command));
    } else {
        std::string path = env_value(env, "PATH");
        size_t start = 0;
        while (start <= path.size()) {
            size_t end = path.find(':', start);
            if (end == std::string::npos) end = path.size();
            std::string dir = path.substr(start, end - start);
            if (dir.empty()) dir = ".";
            s.candidates.push_back(s.keep(dir + "/" + command));
            start = end + 1;
        }
    }
    for (const auto& a : argv) s.argv.push_back(const_cast<char*>(s.keep(a)));
    s.argv.push_back(nullptr);
    for (const auto& e : env) s.envp.push_back(const_cast<char*>(s.keep(e)));
    s.envp.push_back(nullptr);
}

// The intermediate process (CLONE_VM, on its own stack), which enters the
// sandbox's namespaces and clones the grandchild into its PID namespace.
Result<io::ProcessHandle> clone_intermediate(JoinChildPlan& plan, CloneStack& stack, int cgroup_fd) {
    int pidfd = -1;
    kabi::CloneArgs args{};
    args.flags = CLONE_VM | CLONE_PIDFD;
    args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    args.stack = reinterpret_cast<uint64_t>(stack.base());
    args.stack_size = join_stack_size;
    if (cgroup_fd >= 0) {
        // The intermediate starts in the sandbox's cgroup, so the grandchild
        // does too: no migration from inside the sandbox's cgroup namespace.
        args.flags |= kabi::clone_into_cgroup;
        args.cgroup = static_cast<uint64_t>(cgroup_fd);
    }
    long pid;
    {
        SignalsBlocked blocked;
        pid = nucleus_clone3_vm(&args, sizeof args, nucleus_join_main, &plan);
    }
    if (pid < 0) return Error::from_errno("clone3", static_cast<int>(-pid));
    return io::ProcessHandle(static_cast<pid_t>(pid), io::unique_fd(pidfd));
}

// "setting the uid /path": the step that failed and what it concerned.
std::string describe_failure(const ChildReport& record) {
    std::string message = child_step_name(static_cast<ChildStep>(record.step));
    char detail[sizeof record.detail + 1] = {};
    for (size_t i = 0; i < sizeof record.detail && record.detail[i]; ++i) detail[i] = record.detail[i];
    if (detail[0]) message += std::string(" ") + detail;
    return message;
}

}  // namespace

asio::awaitable<Result<io::ProcessHandle>> spawn_joined(JoinRequest request, JoinFailure* failure) {
    const std::string context = "joining sandbox " + std::to_string(request.target_pid);
    auto failed = [&](Error error, uint32_t step = 0, int child_errno = 0) {
        error = std::move(error).wrap(context);
        if (failure) *failure = JoinFailure{.error = error, .step = step, .child_errno = child_errno};
        return error;
    };
    if (!request.plan) co_return failed(Error::plain("no launch plan"));
    if (request.target_pidfd < 0) co_return failed(Error::plain("no pidfd for the sandbox's first process"));
    if (request.argv.empty()) co_return failed(Error::plain("no command given"));
    const LaunchPlan& launch = *request.plan;
    const ChildPlan& sb = launch.child;
    if (sb.seccomp_listener) co_return failed(Error::plain("a sandbox in trace mode cannot be joined"));

    JoinStrings strings;
    fill_program(strings, request.argv, request.env ? *request.env : default_env(sb));
    std::optional<LandlockRuleset> ruleset;
    if (launch.landlock.enforced && sb.landlock_ruleset_fd >= 0) {
        auto created = create_landlock_ruleset(launch.landlock.abi);
        if (!created) co_return failed(std::move(created).error().wrap("preparing Landlock"));
        ruleset = std::move(*created);
    }
    auto report = io::make_pipe();
    if (!report) co_return failed(std::move(report).error().wrap("creating the report pipe"));
    CloneStack intermediate_stack(join_stack_size), grandchild_stack(join_stack_size);
    if (!intermediate_stack.base() || !grandchild_stack.base())
        co_return failed(Error::from_errno("allocating the join stacks"));

    JoinChildPlan plan{
        .report_fd = report->write.get(),
        .report_peer_fd = report->read.get(),
        .target_pidfd = request.target_pidfd,
        .namespaces = launch.namespaces,
        .grandchild_stack = grandchild_stack.base(),
        .grandchild_stack_size = join_stack_size,
        .grandchild_pid = 0,
        .stdio = {request.stdio[0], request.stdio[1], request.stdio[2]},
        .sandbox = &sb,
        .landlock_ruleset_fd = ruleset ? ruleset->fd.get() : -1,
        .workdir = request.workdir.empty() ? sb.workdir : strings.keep(request.workdir),
        .program = {.candidates = strings.candidates.data(),
                    .candidate_count = strings.candidates.size(),
                    .argv = strings.argv.data(),
                    .envp = strings.envp.data()},
    };

    auto cloned = clone_intermediate(plan, intermediate_stack, request.cgroup_fd);
    if (!cloned) co_return failed(std::move(cloned).error());
    io::ProcessHandle intermediate = std::move(*cloned);
    report->write.reset();  // EOF now means: I exited and G exec'd or died

    auto executor = co_await asio::this_coro::executor;
    asio::posix::stream_descriptor pipe(executor, report->read.release());
    ChildReport record{};
    auto [ec, n] =
        co_await asio::async_read(pipe, asio::buffer(&record, sizeof record), asio::as_tuple(asio::use_awaitable));
    // The grandchild's pid is written before it runs and before I can
    // report or exit, so after the read it is final.
    pid_t grandchild_pid = __atomic_load_n(&plan.grandchild_pid, __ATOMIC_ACQUIRE);
    io::ProcessHandle grandchild;
    Error open_error = Error::plain("");
    if (grandchild_pid > 0) {
        auto opened = io::pidfd_open(grandchild_pid);  // our zombie-or-live child: no pid reuse
        if (opened) grandchild = io::ProcessHandle(grandchild_pid, std::move(*opened));
        else open_error = std::move(opened).error();
    }
    auto intermediate_exit = co_await intermediate.wait_exit();

    auto stop_grandchild = [&]() -> asio::awaitable<void> {
        if (grandchild.valid()) {
            (void)grandchild.send_signal(SIGKILL);
            (void)co_await grandchild.wait_exit();
        } else if (grandchild_pid > 0) {
            ::kill(grandchild_pid, SIGKILL);
        }
    };

    bool eof = ec == asio::error::eof && n == 0;
    if (!eof) {
        co_await stop_grandchild();
        if (ec || n != sizeof record || record.kind != ChildReport::Failed)
            co_return failed(Error::plain("reading the join report failed"));
        co_return failed(Error{record.err, describe_failure(record)}, record.step, record.err);
    }
    if (grandchild_pid <= 0) {
        std::string how = "the join process died before entering the sandbox";
        if (intermediate_exit) how += " (status " + std::to_string(intermediate_exit->shell_code()) + ")";
        co_return failed(Error::plain(how));
    }
    if (!grandchild.valid()) {
        co_await stop_grandchild();
        co_return failed(std::move(open_error).wrap("opening a pidfd for the joined process"));
    }
    co_return std::move(grandchild);
}

}  // namespace nucleus::isolation
