// A process referred to by pid and pidfd together.
//
// The pidfd makes every later operation race-free against pid reuse: signals
// go through pidfd_send_signal(2) and exit is awaited by an io_uring poll on
// the pidfd (readable once the process has exited, see pidfd_open(2)),
// followed by waitid(P_PIDFD). No SIGCHLD handler, no blocking waitpid.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <asio/awaitable.hpp>

#include "io/unique_fd.hpp"

namespace nucleus::io {

struct ExitStatus {
    bool signaled = false;
    int value = 0;  // exit code, or the signal number when signaled
    bool core_dumped = false;
    struct rusage usage {};

    // Shell convention: the exit code, or 128 + N for signal N.
    int shell_code() const noexcept { return signaled ? 128 + value : value; }
};

class ProcessHandle {
public:
    ProcessHandle() = default;
    ProcessHandle(pid_t pid, unique_fd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}

    pid_t pid() const noexcept { return pid_; }
    int pidfd() const noexcept { return pidfd_.get(); }
    bool valid() const noexcept { return pidfd_.valid(); }

    // pidfd_send_signal(2). ESRCH once the process has exited.
    Status send_signal(int sig) const;
    // Reaps without waiting: the status if it has exited, an error otherwise
    // (EAGAIN-like: code 0 with "still running").
    Result<ExitStatus> try_reap() const;
    // Completes when the process exits, then reaps it. Cancellable: a
    // cancelled wait returns an Error with code ECANCELED and reaps nothing.
    asio::awaitable<Result<ExitStatus>> wait_exit() const;

private:
    pid_t pid_ = -1;
    unique_fd pidfd_;
};

// Opens a pidfd for an existing pid (pidfd_open(2)).
Result<unique_fd> pidfd_open(pid_t pid);

}  // namespace nucleus::io
