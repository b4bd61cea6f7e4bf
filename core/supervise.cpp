#include "core/supervise.hpp"

#include <fcntl.h>
#include <signal.h>

#include <unistd.h>

#include <chrono>
#include <memory>
#include <variant>

#include <asio/any_completion_handler.hpp>
#include <asio/as_tuple.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace nucleus::core {

using namespace asio::experimental::awaitable_operators;

const sigset_t& forwarded_signals() {
    static const sigset_t set = [] {
        sigset_t s;
        sigemptyset(&s);
        for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGSTKFLT, SIGVTALRM, SIGPROF,
                        SIGIO, SIGPWR, SIGXCPU, SIGXFSZ})
            sigaddset(&s, sig);
        for (int sig = SIGRTMIN; sig <= SIGRTMAX; ++sig) sigaddset(&s, sig);
        return s;
    }();
    return set;
}

bool init_handles_signal(pid_t pid, int sig) {
    auto status = io::read_file("/proc/" + std::to_string(pid) + "/status", 64 << 10);
    if (!status) return true;  // gone or unreadable: nothing to emulate
    for (const char* key : {"\nSigCgt:\t", "\nSigIgn:\t"}) {
        auto pos = status->find(key);
        if (pos == std::string::npos) continue;
        unsigned long long mask = std::strtoull(status->c_str() + pos + std::strlen(key), nullptr, 16);
        if (mask & (1ULL << (sig - 1))) return true;
    }
    return false;
}

namespace {

// kernfs (cgroupfs) raises POLLPRI when a file's event counter moves and
// keeps raising it until the file is read again *through the same open
// descriptor* (kernfs_generic_poll compares the counter seen at the last read
// of that descriptor), so every re-read here is a pread on the watched fd.
std::string reread(asio::posix::stream_descriptor& file) {
    char buf[4096];
    ssize_t n = ::pread(file.native_handle(), buf, sizeof buf - 1, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::optional<asio::posix::stream_descriptor> watch_file(asio::any_io_executor ex, const std::string& path) {
    auto fd = io::open_fd(path, O_RDONLY);
    if (!fd) return std::nullopt;
    asio::posix::stream_descriptor file(ex, fd->release());
    reread(file);
    return file;
}

void kill_sandbox(const SupervisionInput& in) {
    if (in.cgroup && in.cgroup->kill().ok()) return;
    // Without a cgroup, killing init tears down the whole PID namespace.
    (void)in.process->send_signal(SIGKILL);
}

// One sandbox's supervision as a set of pending io_uring waits whose
// handlers share this object: the exit (pidfd), both output pipes, and what
// the request asks for besides (forwarded signals, a deadline, cgroup event
// counters, trace-mode notifications). An idle sandbox costs these waits and
// nothing else: no coroutine frame per concern, which is what a daemon
// holding a thousand sleeping sandboxes pays for (see docs/ARCHITECTURE.md).
// Everything runs on the reactor thread; done when the process has been
// reaped and both pipes have reached EOF, and any trace task has returned.
class Supervision : public std::enable_shared_from_this<Supervision> {
public:
    using Handler = asio::any_completion_handler<void(SupervisionResult)>;

    Supervision(asio::any_io_executor ex, SupervisionInput in, Handler handler)
        : ex_(ex),
          in_(std::move(in)),
          handler_(std::move(handler)),
          exit_(ex),
          out_(ex, in_.stdout_read),
          err_(ex, in_.stderr_read) {}

    void start() {
        std::error_code ec;
        exit_.assign(in_.process->pidfd(), ec);
        if (ec) {
            result_.wait_error = Error{ec.value(), "waiting for process " + std::to_string(in_.process->pid())};
            exit_done_ = true;
        } else {
            arm_exit();
        }
        start_pump(0, out_, *in_.stdout_sink, result_.stdout_pump);
        start_pump(1, err_, *in_.stderr_sink, result_.stderr_pump);
        if (!exit_done_) start_watches();
        maybe_finish();
    }

private:
    void arm_exit() {
        exit_.async_wait(asio::posix::descriptor_base::wait_read,
                         [self = shared_from_this()](std::error_code ec) { self->on_exit_ready(ec); });
    }

    void on_exit_ready(std::error_code ec) {
        if (ec) {
            result_.wait_error = Error{ec.value(), "waiting for process " + std::to_string(in_.process->pid())};
        } else {
            auto reaped = in_.process->try_reap();
            if (!reaped) {
                arm_exit();  // a spurious wake-up
                return;
            }
            result_.status = *reaped;
        }
        exit_done_ = true;
        stop_watches();
        maybe_finish();
    }

    void start_pump(int i, asio::posix::stream_descriptor& source, io::OutputSink& sink, io::PumpResult& result) {
        auto done = [self = shared_from_this(), i, &source, &result](io::PumpResult r) {
            result = std::move(r);
            std::error_code ignored;
            source.close(ignored);  // a failed sink: the sandbox's writer sees EPIPE
            self->pumps_done_[i] = true;
            self->maybe_finish();
        };
        if (in_.shared_pump_buffer && sink.is_file()) {
            io::pump_shared(source, sink, std::move(done));
            return;
        }
        // A terminal or pipe sink is written asynchronously: a coroutine.
        asio::co_spawn(ex_, io::pump(std::move(source), sink),
                       [done = std::move(done)](std::exception_ptr e, io::PumpResult r) mutable {
                           if (e) r.status = Error::plain("output pump failed");
                           done(std::move(r));
                       });
    }

    void start_watches() {
        if (in_.forward_signals) {
            signals_.emplace(ex_);
            const sigset_t& forwarded = forwarded_signals();
            for (int sig = 1; sig < NSIG; ++sig)
                if (sigismember(&forwarded, sig) == 1) signals_->add(sig);
            ::sigprocmask(SIG_UNBLOCK, &forwarded, nullptr);  // blocked during setup (core/run.cpp)
            arm_signals();
        }
        if (in_.timeout_seconds) {
            deadline_.emplace(ex_, std::chrono::duration_cast<asio::steady_timer::duration>(
                                       std::chrono::duration<double>(*in_.timeout_seconds)));
            deadline_->async_wait([self = shared_from_this()](std::error_code ec) {
                if (ec || self->exit_done_) return;
                self->result_.timed_out = true;
                kill_sandbox(self->in_);
            });
        }
        if (in_.cgroup && in_.on_cgroup_events) {
            counts_ = isolation::read_cgroup_event_counts(in_.cgroup->path());
            for (const char* name : {"/memory.events", "/pids.events"}) {
                auto file = watch_file(ex_, in_.cgroup->path() + name);
                if (!file) continue;
                cgroup_files_.push_back(std::make_unique<asio::posix::stream_descriptor>(std::move(*file)));
                arm_cgroup_file(*cgroup_files_.back());
            }
        }
        if (in_.seccomp_listener >= 0 && in_.trace) {
            trace_running_ = true;
            asio::co_spawn(
                ex_, isolation::answer_notifications(in_.seccomp_listener, *in_.trace),
                asio::bind_cancellation_slot(trace_cancel_.slot(), [self = shared_from_this()](std::exception_ptr) {
                    self->trace_running_ = false;
                    self->maybe_finish();
                }));
        }
    }

    void arm_signals() {
        signals_->async_wait([self = shared_from_this()](std::error_code ec, int sig) {
            if (ec || self->exit_done_) return;
            auto& in = self->in_;
            (void)in.process->send_signal(sig);
            if (!init_handles_signal(in.process->pid(), sig)) {
                self->result_.forwarded_fatal_signal = sig;
                kill_sandbox(in);
            }
            self->arm_signals();
        });
    }

    void arm_cgroup_file(asio::posix::stream_descriptor& file) {
        file.async_wait(asio::posix::descriptor_base::wait_error,
                        [self = shared_from_this(), &file](std::error_code ec) {
                            if (ec || self->exit_done_) return;
                            reread(file);
                            auto now = isolation::read_cgroup_event_counts(self->in_.cgroup->path());
                            if (!(now == self->counts_)) self->in_.on_cgroup_events(now);
                            self->counts_ = now;
                            self->arm_cgroup_file(file);
                        });
    }

    void stop_watches() {
        std::error_code ignored;
        if (signals_) signals_->cancel(ignored);
        if (deadline_) deadline_->cancel();
        for (auto& file : cgroup_files_) file->close(ignored);
        if (trace_running_) trace_cancel_.emit(asio::cancellation_type::terminal);
    }

    void maybe_finish() {
        if (finished_ || !exit_done_ || !pumps_done_[0] || !pumps_done_[1] || trace_running_) return;
        finished_ = true;
        // The pidfd is borrowed from the ProcessHandle: let go of it before
        // the caller resumes and may close it.
        std::error_code ignored;
        exit_.cancel(ignored);
        (void)exit_.release();
        std::move(handler_)(std::move(result_));
    }

    asio::any_io_executor ex_;
    SupervisionInput in_;
    Handler handler_;
    SupervisionResult result_;
    asio::posix::stream_descriptor exit_;
    asio::posix::stream_descriptor out_, err_;
    std::optional<asio::signal_set> signals_;
    std::optional<asio::steady_timer> deadline_;
    std::vector<std::unique_ptr<asio::posix::stream_descriptor>> cgroup_files_;
    isolation::CgroupEventCounts counts_;
    asio::cancellation_signal trace_cancel_;
    bool trace_running_ = false;
    bool exit_done_ = false;
    bool pumps_done_[2] = {false, false};
    bool finished_ = false;
};

}  // namespace

asio::awaitable<SupervisionResult> supervise(SupervisionInput input) {
    return asio::async_initiate<decltype(asio::use_awaitable), void(SupervisionResult)>(
        [](auto handler, SupervisionInput in) {
            auto ex = asio::get_associated_executor(handler);
            std::make_shared<Supervision>(ex, std::move(in), std::move(handler))->start();
        },
        asio::use_awaitable, std::move(input));
}

asio::awaitable<Status> remove_cgroup(isolation::SandboxCgroup& cgroup) {
    auto executor = co_await asio::this_coro::executor;
    (void)cgroup.kill();
    auto first = cgroup.remove();
    if (first || first.error().code != EBUSY) co_return first;
    // cgroup.events raises POLLPRI when "populated" changes (cgroup-v2.rst).
    auto events = io::open_fd(cgroup.path() + "/cgroup.events", O_RDONLY);
    if (!events) co_return std::move(events).error();
    asio::posix::stream_descriptor watch(executor, events->release());
    asio::steady_timer limit(executor, std::chrono::seconds(10));
    for (;;) {
        if (reread(watch).find("populated 0") != std::string::npos) co_return cgroup.remove();
        auto woke =
            co_await (watch.async_wait(asio::posix::descriptor_base::wait_error, asio::as_tuple(asio::use_awaitable)) ||
                      limit.async_wait(asio::as_tuple(asio::use_awaitable)));
        if (woke.index() == 1) co_return Error{EBUSY, "cgroup " + cgroup.path() + " still populated after 10 s"};
    }
}

asio::awaitable<Status> set_frozen(isolation::SandboxCgroup& cgroup, bool frozen) {
    auto executor = co_await asio::this_coro::executor;
    auto events = io::open_fd(cgroup.path() + "/cgroup.events", O_RDONLY);
    if (!events) co_return std::move(events).error();
    asio::posix::stream_descriptor watch(executor, events->release());
    if (auto st = cgroup.request_freeze(frozen); !st) co_return st;
    const char* done = frozen ? "frozen 1" : "frozen 0";
    asio::steady_timer limit(executor, std::chrono::seconds(10));
    for (;;) {
        if (reread(watch).find(done) != std::string::npos) co_return Status{};
        auto woke =
            co_await (watch.async_wait(asio::posix::descriptor_base::wait_error, asio::as_tuple(asio::use_awaitable)) ||
                      limit.async_wait(asio::as_tuple(asio::use_awaitable)));
        if (woke.index() == 1) co_return Error{ETIMEDOUT, std::string("cgroup ") + cgroup.path() + " not " + done};
    }
}

}  // namespace nucleus::core
