// `nucleus run`: one sandbox through its lifecycle (core/lifecycle.hpp) on
// a reactor of its own, its output on our stdout/stderr, its exit code ours.
#include "core/run.hpp"

#include <fcntl.h>
#include <signal.h>

#include <cstring>
#include <exception>
#include <optional>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "core/lifecycle.hpp"
#include "io/reactor.hpp"
#include "io/startup.hpp"

namespace nucleus::core {

using namespace lifecycle;

namespace {

// Supervision on `reactor`, to the sandbox's end; an escaped exception is
// the outcome's error.
Outcome run_on(asio::io_context& reactor, RunContext ctx) {
    std::optional<Outcome> finished;
    std::exception_ptr failure;
    asio::co_spawn(reactor, spawn_and_supervise(std::move(ctx)), [&](std::exception_ptr e, Outcome o) {
        failure = e;
        finished = std::move(o);
    });
    reactor.run();
    Outcome outcome;
    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            outcome.error = std::string("supervisor failure: ") + e.what();
        }
    } else if (finished) {
        outcome = std::move(*finished);
    }
    return outcome;
}

// From the admitted request to the sandbox's end: pipes, preparation,
// output sinks, supervision. What fails on the way is the outcome's error;
// the caller tears down whatever was made.
Outcome prepare_and_run(asio::io_context& reactor, const SandboxSpec& spec, Sandbox& sb, EventLog& events,
                        EventLog& audit, isolation::SyscallTrace& trace) {
    Outcome outcome;
    auto out = io::make_pipe();
    auto err = io::make_pipe();
    auto devnull = io::open_fd("/dev/null", O_RDONLY);
    if (!out || !err || !devnull) {
        outcome.error = "creating output pipes: " + std::string(std::strerror(errno));
        return outcome;
    }
    auto plan = prepare(spec, sb, *out, *err, devnull->get());
    if (!plan) {
        outcome.error = plan.error().describe();
        return outcome;
    }
    for (const auto& d : sb.degraded) report_warning("running degraded: " + d);
    (void)audit.emit(applied_audit(spec, sb, **plan));
    auto sinks = open_sinks(reactor.get_executor(), spec, sb);
    if (!sinks) {
        outcome.error = sinks.error().describe();
        return outcome;
    }
    return run_on(reactor, RunContext{
                               .trace = spec.seccomp_mode == SeccompMode::Trace ? &trace : nullptr,
                               .spec = &spec,
                               .sb = &sb,
                               .plan = plan->get(),
                               .events = &events,
                               .out_pipe = &*out,
                               .err_pipe = &*err,
                               .sinks = &*sinks,
                               .forward_signals = true,
                               .shared_pump_buffer = false,
                               // Start-up is over: what it needed of the heap goes back.
                               .on_started = [](const io::ProcessHandle&) { io::release_startup_memory(); },
                               .resolver = nullptr,  // --network egress: the sandbox's service makes its own
                           });
}

}  // namespace

int run_sandbox(const SandboxSpec& spec) {
    // The signals supervision forwards (SIGINT, SIGTERM, SIGQUIT, SIGUSR1...)
    // wait (pending) until it does: arriving during setup they must not kill
    // us between creating the cgroup and tearing it down. Supervision
    // unblocks them once its signal_set exists; a setup that fails returns
    // before they are handled, and the kernel delivers them at exit.
    const sigset_t& forwarded = forwarded_signals();
    ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    auto unblock = [&] { ::sigprocmask(SIG_UNBLOCK, &forwarded, nullptr); };
    auto refuse = [&](const Error& error) {
        report_error(error.describe());
        unblock();
        return exit_runtime_error;
    };

    // One ring, made now so that a host without io_uring fails before
    // anything exists. A sandbox has a handful of operations in flight
    // (its pidfd, two output pipes, signals, a timer, cgroup events): 64
    // entries, 6 KiB of populated ring instead of 25 KiB for 256.
    io::set_ring_entries(64);
    auto reactor = io::make_reactor();
    if (auto st = io::start_io_uring(reactor); !st) return refuse(st.error());
    auto events = EventLog::open(spec.events_jsonl, spec.events_fd, "--events-jsonl");
    if (!events) return refuse(events.error());
    auto audit = EventLog::open(spec.audit_log, std::nullopt, "--audit-log");
    if (!audit) return refuse(audit.error());
    // The mode's rules and the integrity checks, before anything exists.
    if (auto allowed = admit(spec, *audit); !allowed) return refuse(allowed.error());
    auto paths = prepare_runtime_paths();
    if (!paths) return refuse(paths.error());
    auto stale = collect_stale_sandboxes(*paths);
    for (const auto& e : stale.errors) report_warning("cleaning up after a previous run: " + e);

    Sandbox sb;
    sb.id = random_id();
    sb.name = spec.name.empty() ? "nucleus-" + sb.id.substr(0, 12) : spec.name;
    sb.hostname = spec.hostname.value_or(sb.id.substr(0, 12));
    sb.paths = *paths;
    isolation::SyscallTrace trace;
    Outcome outcome = prepare_and_run(reactor, spec, sb, *events, *audit, trace);
    if (spec.seccomp_mode == SeccompMode::Trace && outcome.supervision) record_trace(spec, trace, *audit);

    // Teardown, in reverse order of preparation.
    json cleanup = teardown(spec, sb, outcome);
    if (!outcome.error.empty()) report_error(outcome.error);
    (void)events->emit(final_record(sb, outcome, cleanup));
    unblock();
    return outcome.exit_code;
}

}  // namespace nucleus::core
