#include "core/supervise.hpp"

#include <fcntl.h>
#include <signal.h>

#include <unistd.h>

#include <chrono>
#include <variant>

#include <asio/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace nucleus::core {

using namespace asio::experimental::awaitable_operators;

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

asio::awaitable<void> wait_error_event(asio::posix::stream_descriptor& file) {
    (void)co_await file.async_wait(asio::posix::descriptor_base::wait_error, asio::as_tuple(asio::use_awaitable));
}

// Runs until cancelled (the sandbox's exit cancels it).
// A cancelled Asio coroutine throws operation_aborted at its next co_await
// unless told otherwise, and the first throw in a static binary sorts every
// FDE in it (no PT_GNU_EH_FRAME): about 2 ms at the end of every run. So the
// loop turns that off and checks the cancellation state itself.
asio::awaitable<void> watch_cgroup_events(SupervisionInput in) {
    auto ex = co_await asio::this_coro::executor;
    co_await asio::this_coro::throw_if_cancelled(false);

    if (!in.cgroup || !in.on_cgroup_events) {
        asio::steady_timer never(ex, asio::steady_timer::time_point::max());
        (void)co_await never.async_wait(asio::as_tuple(asio::use_awaitable));
        co_return;
    }
    auto memory = watch_file(ex, in.cgroup->path() + "/memory.events");
    auto pids = watch_file(ex, in.cgroup->path() + "/pids.events");
    asio::steady_timer never(ex, asio::steady_timer::time_point::max());
    auto counts = isolation::read_cgroup_event_counts(in.cgroup->path());
    for (;;) {
        if (memory && pids) co_await (wait_error_event(*memory) || wait_error_event(*pids));
        else if (memory) co_await wait_error_event(*memory);
        else if (pids) co_await wait_error_event(*pids);
        else (void)co_await never.async_wait(asio::as_tuple(asio::use_awaitable));
        auto state = co_await asio::this_coro::cancellation_state;
        if (state.cancelled() != asio::cancellation_type::none) co_return;
        if (memory) reread(*memory);
        if (pids) reread(*pids);
        auto now = isolation::read_cgroup_event_counts(in.cgroup->path());
        if (!(now == counts)) in.on_cgroup_events(now);
        counts = now;
    }
}

// Trace mode's notification answering; pending forever otherwise.
asio::awaitable<void> answer_trace(SupervisionInput in) {
    if (in.seccomp_listener >= 0 && in.trace) {
        co_await isolation::answer_notifications(in.seccomp_listener, *in.trace);
        co_return;
    }
    asio::steady_timer never(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
    (void)co_await never.async_wait(asio::as_tuple(asio::use_awaitable));
}

void kill_sandbox(const SupervisionInput& in) {
    if (in.cgroup && in.cgroup->kill().ok()) return;
    // Without a cgroup, killing init tears down the whole PID namespace.
    (void)in.process->send_signal(SIGKILL);
}

struct Watch {
    io::ExitStatus status;
    bool timed_out = false;
    int forwarded_fatal_signal = 0;
    Status error;
};

asio::awaitable<Watch> watch(SupervisionInput in) {
    auto executor = co_await asio::this_coro::executor;
    asio::signal_set signals(executor);
    if (in.forward_signals) {
        signals.add(SIGINT);
        signals.add(SIGTERM);
        signals.add(SIGHUP);
        sigset_t forwarded;
        sigemptyset(&forwarded);
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&forwarded, sig);
        ::sigprocmask(SIG_UNBLOCK, &forwarded, nullptr);  // blocked during setup (core/run.cpp)
    }
    asio::steady_timer deadline(executor, asio::steady_timer::time_point::max());
    if (in.timeout_seconds)
        deadline.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(
            std::chrono::duration<double>(*in.timeout_seconds)));
    Watch result;
    for (;;) {
        auto event = co_await (in.process->wait_exit() ||
                               signals.async_wait(asio::as_tuple(asio::use_awaitable)) ||
                               deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
        if (event.index() == 0) {
            auto& exited = std::get<0>(event);
            if (exited) result.status = *exited;
            else result.error = std::move(exited).error();
            co_return result;
        }
        if (event.index() == 1) {
            auto [ec, sig] = std::get<1>(event);
            if (ec) continue;
            (void)in.process->send_signal(sig);
            if (!init_handles_signal(in.process->pid(), sig)) {
                result.forwarded_fatal_signal = sig;
                kill_sandbox(in);
            }
            continue;
        }
        auto [ec] = std::get<2>(event);
        if (ec) continue;
        result.timed_out = true;
        deadline.expires_at(asio::steady_timer::time_point::max());
        kill_sandbox(in);
    }
}

// (Not a conditional expression inside co_await: GCC 12 destroys such a
// temporary awaitable twice.)
asio::awaitable<io::PumpResult> pump_into(bool shared, asio::posix::stream_descriptor source, io::OutputSink& sink) {
    if (shared) co_return co_await io::pump_shared(std::move(source), sink);
    co_return co_await io::pump(std::move(source), sink);
}

}  // namespace

asio::awaitable<SupervisionResult> supervise(SupervisionInput in) {
    auto executor = co_await asio::this_coro::executor;
    asio::posix::stream_descriptor out(executor, in.stdout_read);
    asio::posix::stream_descriptor err(executor, in.stderr_read);
    auto [watched_or_events, out_result, err_result] =
        co_await ((watch(in) || watch_cgroup_events(in) || answer_trace(in)) &&
                  pump_into(in.shared_pump_buffer, std::move(out), *in.stdout_sink) &&
                  pump_into(in.shared_pump_buffer, std::move(err), *in.stderr_sink));
    // watch_cgroup_events and answer_trace never complete by themselves.
    Watch watched = std::move(std::get<0>(watched_or_events));
    SupervisionResult result;
    result.status = watched.status;
    result.timed_out = watched.timed_out;
    result.forwarded_fatal_signal = watched.forwarded_fatal_signal;
    result.wait_error = std::move(watched.error);
    result.stdout_pump = std::move(out_result);
    result.stderr_pump = std::move(err_result);
    co_return result;
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
        auto woke = co_await (watch.async_wait(asio::posix::descriptor_base::wait_error,
                                               asio::as_tuple(asio::use_awaitable)) ||
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
        auto woke = co_await (watch.async_wait(asio::posix::descriptor_base::wait_error,
                                               asio::as_tuple(asio::use_awaitable)) ||
                              limit.async_wait(asio::as_tuple(asio::use_awaitable)));
        if (woke.index() == 1) co_return Error{ETIMEDOUT, std::string("cgroup ") + cgroup.path() + " not " + done};
    }
}

}  // namespace nucleus::core
