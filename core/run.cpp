// `nucleus run`: one sandbox through its lifecycle (core/lifecycle.hpp) on
// a reactor of its own, its output on our stdout/stderr, its exit code ours.
#include "core/run.hpp"

#include <fcntl.h>
#include <signal.h>

#include <exception>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "core/lifecycle.hpp"
#include "io/reactor.hpp"
#include "io/startup.hpp"

namespace nucleus::core {

using namespace lifecycle;

int run_sandbox(const SandboxSpec& spec) {
    // The signals supervision forwards (SIGINT, SIGTERM, SIGQUIT, SIGUSR1...)
    // wait (pending) until it does: arriving during setup they must not kill
    // us between creating the cgroup and tearing it down. Supervision
    // unblocks them once its signal_set exists; a setup that fails returns
    // before they are handled, and the kernel delivers them at exit.
    const sigset_t& forwarded = forwarded_signals();
    ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    auto unblock = [&] { ::sigprocmask(SIG_UNBLOCK, &forwarded, nullptr); };

    // One ring, made now so that a host without io_uring fails before
    // anything exists. A sandbox has a handful of operations in flight
    // (its pidfd, two output pipes, signals, a timer, cgroup events): 64
    // entries, 6 KiB of populated ring instead of 25 KiB for 256.
    io::set_ring_entries(64);
    auto reactor = io::make_reactor();
    if (auto st = io::start_io_uring(reactor); !st) {
        report_error(st.error().describe());
        unblock();
        return exit_runtime_error;
    }
    auto events = EventLog::open(spec.events_jsonl, spec.events_fd, "--events-jsonl");
    if (!events) {
        report_error(events.error().describe());
        unblock();
        return exit_runtime_error;
    }
    auto audit = EventLog::open(spec.audit_log, std::nullopt, "--audit-log");
    if (!audit) {
        report_error(audit.error().describe());
        unblock();
        return exit_runtime_error;
    }
    // The mode's rules and the integrity checks, before anything exists.
    if (auto allowed = admit(spec, *audit); !allowed) {
        report_error(allowed.error().describe());
        unblock();
        return exit_runtime_error;
    }
    auto paths = prepare_runtime_paths();
    if (!paths) {
        report_error(paths.error().describe());
        unblock();
        return exit_runtime_error;
    }
    auto stale = collect_stale_sandboxes(*paths);
    for (const auto& e : stale.errors) report_warning("cleaning up after a previous run: " + e);

    Sandbox sb;
    sb.id = random_id();
    sb.name = spec.name.empty() ? "nucleus-" + sb.id.substr(0, 12) : spec.name;
    sb.hostname = spec.hostname.value_or(sb.id.substr(0, 12));
    sb.paths = *paths;

    auto out = io::make_pipe();
    auto err = io::make_pipe();
    auto devnull = io::open_fd("/dev/null", O_RDONLY);
    Outcome outcome;
    isolation::SyscallTrace trace;
    if (!out || !err || !devnull) {
        outcome.error = "creating output pipes: " + std::string(std::strerror(errno));
    } else if (auto plan = prepare(spec, sb, *out, *err, devnull->get()); !plan) {
        outcome.error = plan.error().describe();
    } else {
        for (const auto& d : sb.degraded) report_warning("running degraded: " + d);
        (void)audit->emit(applied_audit(spec, sb, **plan));
        auto sinks = open_sinks(reactor.get_executor(), spec, sb);
        if (!sinks) {
            outcome.error = sinks.error().describe();
        } else {
            RunContext ctx{
                .trace = spec.seccomp_mode == SeccompMode::Trace ? &trace : nullptr,
                .spec = &spec,
                .sb = &sb,
                .plan = plan->get(),
                .events = &*events,
                .out_pipe = &*out,
                .err_pipe = &*err,
                .sinks = &*sinks,
                .forward_signals = true,
                .shared_pump_buffer = false,
                // Start-up is over: what it needed of the heap goes back.
                .on_started = [](const io::ProcessHandle&) { io::release_startup_memory(); },
            };
            std::optional<Outcome> finished;
            std::exception_ptr failure;
            asio::co_spawn(reactor, spawn_and_supervise(ctx), [&](std::exception_ptr e, Outcome o) {
                failure = e;
                finished = std::move(o);
            });
            reactor.run();
            if (failure) {
                try {
                    std::rethrow_exception(failure);
                } catch (const std::exception& e) {
                    outcome.error = std::string("supervisor failure: ") + e.what();
                }
            } else if (finished) {
                outcome = std::move(*finished);
            }
        }
    }

    if (spec.seccomp_mode == SeccompMode::Trace && outcome.supervision) record_trace(spec, trace, *audit);

    // Teardown, in reverse order of preparation.
    json cleanup = teardown(spec, sb, outcome);
    if (!outcome.error.empty()) report_error(outcome.error);
    (void)events->emit(final_record(sb, outcome, cleanup));
    unblock();
    return outcome.exit_code;
}

}  // namespace nucleus::core
