#include "io/process.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace nucleus::io {

Result<unique_fd> pidfd_open(pid_t pid) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) return Error::from_errno("pidfd_open " + std::to_string(pid));
    return unique_fd(fd);
}

Status ProcessHandle::send_signal(int sig) const {
    if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) < 0)
        return Error::from_errno("pidfd_send_signal " + std::to_string(pid_));
    return {};
}

Result<ExitStatus> ProcessHandle::try_reap() const {
    siginfo_t info{};
    ExitStatus status;
    // The raw waitid takes a fifth rusage argument that glibc's wrapper hides.
    long rc;
    do {
        rc = ::syscall(SYS_waitid, P_PIDFD, pidfd_.get(), &info, WEXITED | WNOHANG, &status.usage);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return Error::from_errno("waitid " + std::to_string(pid_));
    if (info.si_pid == 0) return Error::plain("process " + std::to_string(pid_) + " is still running");
    switch (info.si_code) {
        case CLD_EXITED:
            status.value = info.si_status;
            break;
        case CLD_DUMPED:
            status.core_dumped = true;
            [[fallthrough]];
        default:
            status.signaled = true;
            status.value = info.si_status;
            break;
    }
    return status;
}

asio::awaitable<Result<ExitStatus>> ProcessHandle::wait_exit() const {
    auto executor = co_await asio::this_coro::executor;
    auto dup = dup_fd(pidfd_.get());
    if (!dup) co_return std::move(dup).error().wrap("waiting for exit");
    // The stream_descriptor owns the duplicate; ours stays valid for signals.
    asio::posix::stream_descriptor watch(executor, dup->release());
    for (;;) {
        auto [ec] =
            co_await watch.async_wait(asio::posix::descriptor_base::wait_read, asio::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted)
            co_return Error{ECANCELED, "waiting for process " + std::to_string(pid_)};
        if (ec) co_return Error{ec.value(), "waiting for process " + std::to_string(pid_)};
        auto reaped = try_reap();
        if (reaped) co_return reaped;
        // A spurious wake-up: keep waiting.
    }
}

}  // namespace nucleus::io
