// Spawning: clone3 with CLONE_VM on a dedicated stack, and the handshake.
//
// The protocol between parent (P) and child (C), over two pipes:
//   control: P -> C, C reads single bytes;  report: C -> P, 128-byte records.
//
//   0. P: clone3(CLONE_VM | CLONE_PIDFD | CLONE_INTO_CGROUP | CLONE_NEW*).
//      C starts blocked on control.
//   1. P writes C's uid_map/gid_map (or runs newuidmap/newgidmap), then
//      sends byte 1. C runs its setup script (isolation/child.cpp), while
//      P attaches C's network namespace (--network bridge), if asked.
//   2. C sends a Ready record and blocks on control again. P verifies from
//      outside (mountinfo, credentials) and sends byte 2, or kills C.
//   3. C loads seccomp and execs. The report pipe is CLOEXEC, so P reads EOF
//      once the exec succeeded. (The built-in filter, which allows the
//      handshake's write and read, C loads before its Ready record instead:
//      its installation then overlaps with P's verification.) In trace mode C first sends a Listener
//      record (the seccomp listener's fd number in C); P takes the fd with
//      pidfd_getfd(2) and answers notifications (execve's among them) while
//      it waits for the EOF.
//   At any step C may send one Failed record {step, errno, detail} and exit;
//   EOF on report before Ready means C died. If P dies, C reads EOF on
//   control and exits (before step 2), or is killed by PDEATHSIG (after).
//
// Because C shares P's memory until it execs, the plan and the stack stay
// untouched and mapped until P has seen the exec (EOF) or C's exit.
#include "isolation/spawn.hpp"

#include "isolation/clone_stack.hpp"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <asio/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "isolation/kernel_abi.hpp"

extern "C" long nucleus_clone3_vm(nucleus::kabi::CloneArgs* args, size_t size, int (*fn)(void*), void* arg);

namespace nucleus::isolation {

using namespace asio::experimental::awaitable_operators;

namespace {

constexpr size_t child_stack_size = 256 * 1024;

Result<io::ProcessHandle> clone_child(const SpawnRequest& request, CloneStack& stack) {
    int pidfd = -1;
    kabi::CloneArgs args{};
    args.flags = CLONE_VM | CLONE_PIDFD | request.namespaces;
    args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    args.stack = reinterpret_cast<uint64_t>(stack.base());
    args.stack_size = stack.size();
    if (request.cgroup_fd >= 0) {
        args.flags |= kabi::clone_into_cgroup;
        args.cgroup = static_cast<uint64_t>(request.cgroup_fd);
    }
    long pid;
    {
        SignalsBlocked blocked;
        pid = nucleus_clone3_vm(&args, sizeof args, nucleus_child_main, request.plan);
    }
    if (pid < 0) return Error::from_errno("clone3", static_cast<int>(-pid));
    return io::ProcessHandle(static_cast<pid_t>(pid), io::unique_fd(pidfd));
}

asio::awaitable<Status> run_helper(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ);
    if (rc != 0) co_return Error::from_errno("posix_spawn " + argv[0], rc);
    auto pidfd = io::pidfd_open(pid);
    if (!pidfd) co_return std::move(pidfd).error();
    io::ProcessHandle helper(pid, std::move(*pidfd));
    auto status = co_await helper.wait_exit();
    if (!status) co_return std::move(status).error();
    if (status->shell_code() != 0)
        co_return Error::plain(argv[0] + " exited with " + std::to_string(status->shell_code()));
    co_return Status{};
}

std::vector<std::string> helper_args(const char* helper, pid_t pid, const std::vector<IdMapping>& map) {
    std::vector<std::string> argv{helper, std::to_string(pid)};
    for (const auto& m : map) {
        argv.push_back(std::to_string(m.inside));
        argv.push_back(std::to_string(m.outside));
        argv.push_back(std::to_string(m.count));
    }
    return argv;
}

asio::awaitable<Status> write_id_maps(pid_t pid, const UserNamespaceMaps& maps) {
    std::string proc = "/proc/" + std::to_string(pid);
    switch (maps.method) {
        case UserNamespaceMaps::Method::DirectDenySetgroups: {
            // An unprivileged writer must deny setgroups before gid_map
            // (user_namespaces(7), "The /proc/[pid]/setgroups file").
            auto st = io::write_file(proc + "/setgroups", "deny");
            if (!st) co_return std::move(st).error();
            [[fallthrough]];
        }
        case UserNamespaceMaps::Method::Direct: {
            auto st = io::write_file(proc + "/uid_map", format_map(maps.uid));
            if (!st) co_return std::move(st).error();
            co_return io::write_file(proc + "/gid_map", format_map(maps.gid));
        }
        case UserNamespaceMaps::Method::Helper: {
            auto st = co_await run_helper(helper_args("/usr/bin/newuidmap", pid, maps.uid));
            if (!st) co_return std::move(st).error();
            co_return co_await run_helper(helper_args("/usr/bin/newgidmap", pid, maps.gid));
        }
    }
    co_return Status{};
}

Status send_byte(int fd) {
    char byte = 1;
    if (::write(fd, &byte, 1) != 1) return Error::from_errno("writing to the child's control pipe");
    return {};
}

enum class ReportOutcome { Record, Eof, Error };

asio::awaitable<ReportOutcome> read_report(asio::posix::stream_descriptor& pipe, ChildReport& report) {
    auto [ec, n] =
        co_await asio::async_read(pipe, asio::buffer(&report, sizeof report), asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::eof && n == 0) co_return ReportOutcome::Eof;
    if (ec || n != sizeof report) co_return ReportOutcome::Error;
    co_return ReportOutcome::Record;
}

SpawnFailure failure_from(const ChildReport& report) {
    auto step = static_cast<ChildStep>(report.step);
    std::string message = child_step_name(step);
    char detail[sizeof report.detail + 1] = {};
    for (size_t i = 0; i < sizeof report.detail && report.detail[i]; ++i) detail[i] = report.detail[i];
    if (detail[0]) message += std::string(" ") + detail;
    return SpawnFailure{.error = Error{report.err, std::move(message)}, .step = step, .child_errno = report.err};
}

SpawnFailure plain_failure(Error error) {
    return SpawnFailure{.error = std::move(error), .step = ChildStep::WaitMaps, .child_errno = 0};
}

// Kills (if needed) and reaps a child that failed before exec, so that its
// stack can be unmapped and nothing is left behind.
asio::awaitable<SpawnResult> fail_after_clone(io::ProcessHandle& child, SpawnFailure failure) {
    (void)child.send_signal(SIGKILL);
    (void)co_await child.wait_exit();
    co_return failure;
}

Result<io::unique_fd> take_listener(const io::ProcessHandle& child, int fd_in_child) {
    long fd = ::syscall(kabi::sys_pidfd_getfd, child.pidfd(), fd_in_child, 0);
    if (fd < 0) return Error::from_errno("pidfd_getfd (seccomp listener)");
    return io::unique_fd(static_cast<int>(fd));
}

// Trace mode, after the Ready/go exchange: receive the Listener record, then
// answer notifications until the exec's EOF arrives.
asio::awaitable<Result<io::unique_fd>> await_traced_exec(asio::posix::stream_descriptor& pipe,
                                                         const io::ProcessHandle& child, SyscallTrace& trace) {
    ChildReport record{};
    auto outcome = co_await read_report(pipe, record);
    if (outcome != ReportOutcome::Record || record.kind != ChildReport::Listener) {
        if (outcome == ReportOutcome::Record) co_return failure_from(record).error;
        co_return Error::plain("the sandbox's first process died before reporting its seccomp listener");
    }
    auto listener = take_listener(child, record.err);
    if (!listener) co_return std::move(listener).error();
    auto ended = co_await (read_report(pipe, record) || answer_notifications(listener->get(), trace));
    if (ended.index() == 0 && std::get<0>(ended) == ReportOutcome::Record) co_return failure_from(record).error;
    co_return std::move(*listener);
}

}  // namespace

asio::awaitable<SpawnResult> spawn_sandbox(SpawnRequest request) {
    auto executor = co_await asio::this_coro::executor;
    auto control = io::make_pipe();
    auto report = io::make_pipe();
    if (!control || !report) co_return plain_failure(Error::from_errno("creating handshake pipes"));
    request.plan->control_fd = control->read.get();
    request.plan->report_fd = report->write.get();
    request.plan->control_peer_fd = control->write.get();
    request.plan->report_peer_fd = report->read.get();
    std::vector<sock_filter> trace_filter;  // must outlive the child's exec
    if (request.trace) {
        auto filter = compile_trace_filter(report->write.get());
        if (!filter) co_return plain_failure(std::move(filter).error().wrap("compiling the trace filter"));
        trace_filter = std::move(*filter);
        request.plan->seccomp_filter = trace_filter.data();
        request.plan->seccomp_len = static_cast<unsigned short>(trace_filter.size());
        request.plan->seccomp_flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
        request.plan->seccomp_listener = true;
        request.plan->seccomp_before_ready = false;
    }

    CloneStack stack(child_stack_size);
    if (!stack.base()) co_return plain_failure(Error::from_errno("allocating the child stack"));
    auto cloned = clone_child(request, stack);
    if (!cloned) co_return plain_failure(std::move(cloned).error());
    io::ProcessHandle child = std::move(*cloned);
    // The child has its own copies (no CLONE_FILES); ours must close so that
    // EOF on report means "exec'd or dead".
    control->read.reset();
    report->write.reset();
    asio::posix::stream_descriptor report_pipe(executor, report->read.release());

    if (auto st = co_await write_id_maps(child.pid(), *request.maps); !st)
        co_return co_await fail_after_clone(child,
                                            plain_failure(std::move(st).error().wrap("writing user namespace maps")));
    if (auto st = send_byte(control->write.get()); !st)
        co_return co_await fail_after_clone(child, plain_failure(std::move(st).error()));
    if (request.attach_network) {
        if (auto st = co_await request.attach_network(child.pid()); !st)
            co_return co_await fail_after_clone(child, plain_failure(std::move(st).error()));
    }

    ChildReport record{};
    auto outcome = co_await read_report(report_pipe, record);
    if (outcome == ReportOutcome::Eof || outcome == ReportOutcome::Error)
        co_return co_await fail_after_clone(
            child, plain_failure(Error::plain("the sandbox's first process died during setup")));
    if (record.kind != ChildReport::Ready) co_return co_await fail_after_clone(child, failure_from(record));

    if (request.verify) {
        if (auto st = request.verify(child.pid()); !st)
            co_return co_await fail_after_clone(child,
                                                plain_failure(std::move(st).error().wrap("verifying the sandbox")));
    }
    if (auto st = send_byte(control->write.get()); !st)
        co_return co_await fail_after_clone(child, plain_failure(std::move(st).error()));
    control->write.reset();

    if (request.trace) {
        auto listener = co_await await_traced_exec(report_pipe, child, *request.trace);
        if (!listener) co_return co_await fail_after_clone(child, plain_failure(std::move(listener).error()));
        co_return Spawned{std::move(child), std::move(*listener)};
    }
    outcome = co_await read_report(report_pipe, record);
    if (outcome == ReportOutcome::Record) co_return co_await fail_after_clone(child, failure_from(record));
    if (outcome == ReportOutcome::Error)
        co_return co_await fail_after_clone(child, plain_failure(Error::plain("reading the sandbox's setup report")));
    // EOF: the child exec'd (or was killed, which the supervisor sees next).
    co_return Spawned{std::move(child), io::unique_fd()};
}

}  // namespace nucleus::isolation
