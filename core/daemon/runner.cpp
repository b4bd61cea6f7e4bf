// One sandbox's run, on the reactor: prepare on the worker thread, spawn,
// supervise, tear down, record. Whatever fails on the way (an exception is
// a bug, or memory) the entry still ends as any other: its processes
// killed and reaped, its cgroup removed, its record written, its waiters
// woken. A task that died half-way would leave a sandbox `starting`,
// running unsupervised, with a zombie, a cgroup and a record behind.
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>

#include <asio/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "core/daemon/daemon.hpp"
#include "core/daemon/recovery.hpp"
#include "core/events.hpp"
#include "core/run.hpp"
#include "core/supervise.hpp"

#ifndef P_PIDFD
#define P_PIDFD 3  // waitid(2) on a pidfd, Linux >= 5.4
#endif

namespace nucleus::core::daemon {

using nlohmann::json;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The workload's stdio: two pipes the daemon reads, /dev/null for stdin.
struct RunPipes {
    io::PipePair out, err;
    io::unique_fd devnull;
};

Result<RunPipes> make_run_pipes() {
    auto out = io::make_pipe();
    auto err = io::make_pipe();
    auto devnull = io::open_fd("/dev/null", O_RDONLY);
    if (!out || !err || !devnull) return Error::from_errno("creating output pipes");
    return RunPipes{std::move(*out), std::move(*err), std::move(*devnull)};
}

PipeId pipe_id(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) < 0) return {0, 0};
    return {st.st_dev, st.st_ino};
}

using Prepared = Result<std::unique_ptr<isolation::LaunchPlan>>;

// prepare() on the worker thread: blocking work (copies, cgroup set-up,
// policy compilation) that the reactor must not wait on. The parent awaits
// this, so the pointees outlive it.
asio::awaitable<void> prepare_on_worker(const SandboxSpec* spec, lifecycle::Sandbox* sb, RunPipes* pipes,
                                        std::optional<Prepared>* result) {
    result->emplace(lifecycle::prepare(*spec, *sb, pipes->out, pipes->err, pipes->devnull.get()));
    co_return;
}

std::unique_ptr<lifecycle::Sandbox> new_sandbox(const Entry& e, const RuntimePaths& paths) {
    auto sb = std::make_unique<lifecycle::Sandbox>();
    sb->id = e.record.id;
    sb->name = e.record.name;
    sb->hostname = e.spec.hostname.value_or(e.record.id.substr(0, 12));
    sb->paths = paths;
    sb->die_with_supervisor = false;
    sb->record_extra = {{"owner", "daemon"}};
    return sb;
}

// Waits (bounded) for the process behind `pidfd` to exit, then reaps it if
// it is our child; one already reaped, or someone else's, is left alone.
asio::awaitable<void> reap(int pidfd) {
    auto ex = co_await asio::this_coro::executor;
    auto dup = io::dup_fd(pidfd);
    if (!dup) co_return;
    asio::posix::stream_descriptor watch(ex, dup->release());
    asio::steady_timer limit(ex, std::chrono::seconds(10));
    (void)co_await (watch.async_wait(asio::posix::descriptor_base::wait_read, use_tuple) ||
                    limit.async_wait(use_tuple));
    siginfo_t info{};
    ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(watch.native_handle()), &info, WEXITED | WNOHANG);
}

std::vector<pid_t> cgroup_pids(const std::string& cgroup_path) {
    std::vector<pid_t> pids;
    auto text = io::read_file(cgroup_path + "/cgroup.procs", 1 << 20);
    if (!text) return pids;
    for (const char* p = text->c_str(); *p;) {
        char* end = nullptr;
        long pid = std::strtol(p, &end, 10);
        if (end == p) break;
        if (pid > 0) pids.push_back(static_cast<pid_t>(pid));
        p = end;
    }
    return pids;
}

}  // namespace

asio::awaitable<void> Daemon::run_entry(Entry* e) {
    e->live.sb = new_sandbox(*e, paths_);
    lifecycle::Outcome outcome;
    std::string failure;
    try {
        outcome = co_await prepare_and_supervise(*e);
    } catch (const std::exception& ex) {
        failure = ex.what();
    } catch (...) {
        failure = "unknown exception";
    }
    if (!failure.empty()) outcome = co_await end_failed_run(*e, std::move(failure));
    // exec'd processes die with the sandbox (cgroup.kill); their
    // coroutines still read the plan until they have reaped them.
    while (e->live.execs > 0) co_await e->live.output.wait();
    e->live.plan.reset();
    json cleanup = lifecycle::teardown(e->spec, *e->live.sb, outcome, true);
    if (!outcome.cgroup_removed) schedule_cleanup();
    finish(*e, outcome, lifecycle::final_record(*e->live.sb, outcome, cleanup));
}

asio::awaitable<lifecycle::Outcome> Daemon::prepare_and_supervise(Entry& e) {
    const auto began = Clock::now();
    lifecycle::Outcome outcome;
    lifecycle::Sandbox& sb = *e.live.sb;
    auto pipes = make_run_pipes();
    if (!pipes) {
        outcome.error = pipes.error().describe();
        co_return outcome;
    }
    e.record.pipes = {pipe_id(pipes->out.read.get()), pipe_id(pipes->err.read.get())};
    std::optional<Prepared> prepared;
    co_await asio::co_spawn(blocking_, prepare_on_worker(&e.spec, &sb, &*pipes, &prepared), asio::use_awaitable);
    if (!*prepared) {
        outcome.error = prepared->error().describe();
        co_return outcome;
    }
    e.live.plan = std::move(**prepared);
    if (sb.cgroup) e.record.cgroup_path = sb.cgroup->path();
    if (sb.lease) e.record.id_slot = sb.lease->slot();
    // Log files appear with the first output.
    lifecycle::Sinks sinks;
    Entry* entry = &e;
    for (auto [sink, stream] : {std::pair{&sinks.out, "stdout"}, std::pair{&sinks.err, "stderr"}}) {
        sink->emplace(io::OutputSink::rotating_log(log_path(e, stream), config_.log_max_bytes));
        (*sink)->on_write([entry] { entry->live.output.notify(); });
    }
    // Called from inside the lifecycle: nothing may unwind through it.
    auto events = EventLog::to([this, entry](const json& record) {
        try {
            auto kind = record.find("event");
            if (kind != record.end() && *kind == "start") entry->record.start_event = record;
            publish(record);
        } catch (const std::exception& ex) {
            lifecycle::report_warning("sandbox " + entry->record.id + ": an event was lost: " + ex.what());
        }
    });
    lifecycle::RunContext ctx{.trace = nullptr,
                              .spec = &e.spec,
                              .sb = &sb,
                              .plan = e.live.plan.get(),
                              .events = &events,
                              .out_pipe = &pipes->out,
                              .err_pipe = &pipes->err,
                              .sinks = &sinks,
                              .forward_signals = false,
                              .shared_pump_buffer = true,
                              .on_started =
                                  [this, entry, began](const io::ProcessHandle& process) {
                                      on_started(*entry, process,
                                                 std::chrono::duration<double>(Clock::now() - began).count());
                                  },
                              .resolver = egress_resolver()};
    co_return co_await lifecycle::spawn_and_supervise(ctx);
}

void Daemon::on_started(Entry& e, const io::ProcessHandle& process, double spawn_seconds) {
    // First: with its pidfd the process can be killed and reaped whatever
    // happens next.
    if (auto dup = io::dup_fd(process.pidfd())) e.live.pidfd = std::move(*dup);
    try {
        e.record.pid = process.pid();
        e.record.start_ticks = process_start_ticks(process.pid()).value_or(0);
        e.record.phase = Phase::Running;
        e.record.started_at = utc_timestamp();
        ++counters_.started_total;
        counters_.spawn_seconds_sum += spawn_seconds;
        ++counters_.spawn_count;
        persist(e);
    } catch (const std::exception& ex) {
        lifecycle::report_warning("sandbox " + e.record.id + ": recording its start: " + ex.what());
    }
    e.live.started.notify();
}

asio::awaitable<lifecycle::Outcome> Daemon::end_failed_run(Entry& e, std::string failure) {
    lifecycle::report_error("supervising sandbox " + e.record.id + ": " + failure);
    lifecycle::Outcome outcome;
    outcome.reason = "supervision_failed";
    outcome.exit_code = exit_runtime_error;
    outcome.error = "the daemon failed supervising the sandbox: " + failure;
    lifecycle::Sandbox& sb = *e.live.sb;
    std::optional<isolation::SandboxCgroup>& cgroup = sb.cgroup;
    // Without a pidfd, its PID 1 may still exist (spawned, not yet handed
    // over): its processes are found in its cgroup, read before the kill.
    std::vector<pid_t> unhandled;
    if (cgroup && !cgroup->removed() && !e.live.pidfd) unhandled = cgroup_pids(cgroup->path());
    kill(e);
    if (e.live.pidfd) co_await reap(e.live.pidfd.get());
    for (pid_t pid : unhandled)
        if (auto fd = io::pidfd_open(pid)) co_await reap(fd->get());
    if (cgroup && !cgroup->removed()) outcome.cgroup_removed = co_await remove_cgroup(*cgroup);
    co_return outcome;
}

}  // namespace nucleus::core::daemon
