#include "core/daemon/daemon.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>

#include "core/events.hpp"
#include "core/supervise.hpp"
#include "io/bytes_json.hpp"
#include "isolation/cgroup.hpp"

namespace nucleus::core::daemon {

using nlohmann::json;

void EventFeed::publish(json event) {
    if (!event.contains("time")) event["time"] = utc_timestamp();
    recent_.emplace_back(next_++, io::dump_json(event) + "\n");
    while (recent_.size() > 1024) recent_.pop_front();
    grew_.notify();
}

Daemon::Daemon(asio::io_context& reactor, DaemonConfig config, RuntimePaths paths)
    : reactor_(reactor),
      config_(std::move(config)),
      paths_(std::move(paths)),
      records_(config_.state_dir + "/daemon"),
      events_(reactor.get_executor()) {}

std::string Daemon::log_path(const Entry& e, const char* stream) const {
    return config_.log_dir + "/" + e.record.id + "." + stream + ".log";
}

void Daemon::persist(Entry& e) {
    if (auto st = records_.write(e.record.id, encode_record(e.record), e.file); !st)
        lifecycle::report_warning("recording sandbox " + e.record.id + ": " + st.error().describe());
}

void Daemon::spawn_task(asio::awaitable<void> task) {
    asio::co_spawn(reactor_, std::move(task), [](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            lifecycle::report_error(std::string("daemon task failed: ") + ex.what());
        } catch (...) {
            lifecycle::report_error("daemon task failed");
        }
    });
}

asio::awaitable<Status> Daemon::start(Entry& e) {
    e.record.phase = Phase::Starting;
    spawn_task(run_entry(&e));
    co_await e.live.started.wait();
    if (e.record.phase == Phase::Exited && e.record.reason == "setup_failed") co_return Error::plain(e.record.error);
    co_return Status{};
}

std::shared_ptr<net::UpstreamResolver> Daemon::egress_resolver() {
    if (!resolver_)
        resolver_ = std::make_shared<net::UpstreamResolver>(reactor_.get_executor(), net::host_resolver_config());
    return resolver_;
}

void Daemon::finish(Entry& e, const lifecycle::Outcome& outcome, const json& final_event) {
    PersistedSandbox& r = e.record;
    bool never_started = r.phase != Phase::Running;
    r.phase = Phase::Exited;
    r.finished_at = utc_timestamp();
    r.reason = outcome.reason.empty() ? "setup_failed" : outcome.reason;
    r.exit_code = outcome.exit_code;
    r.signal = outcome.signal;
    if (e.live.fatal_signal && r.reason == "signal" && outcome.signal == SIGKILL) {
        r.signal = e.live.fatal_signal;
        r.exit_code = 128 + e.live.fatal_signal;
    }
    if (r.exit_unknown()) {
        r.exit_code.reset();
        r.signal.reset();
    }
    r.error = outcome.error;
    e.final_event = final_event;
    e.live.pidfd.reset();
    e.live.sb.reset();
    if (never_started) ++counters_.start_failures;
    if (auto egress = final_event.find("egress"); egress != final_event.end() && egress->is_object())
        for (const auto& [key, value] : egress->items())
            if (value.is_number_unsigned()) counters_.egress_totals[key] += value.get<uint64_t>();
    ++counters_.exits_by_reason[r.reason];
    persist(e);
    publish(final_event);
    e.live.started.notify();
    e.live.exited.notify();
    e.live.output.notify();
}

Status Daemon::send_signal(Entry& e, int sig) {
    if (e.record.phase != Phase::Running || !e.live.pidfd)
        return Error{ESRCH, "sandbox " + e.record.id + " is not running"};
    if (::syscall(SYS_pidfd_send_signal, e.live.pidfd.get(), sig, nullptr, 0) < 0)
        return Error::from_errno("signalling sandbox " + e.record.id);
    // The kernel drops a signal to a PID namespace's init that neither
    // handles nor ignores it; as `nucleus run` does, such a signal ends the
    // whole sandbox.
    if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCONT && e.record.pid &&
        !init_handles_signal(*e.record.pid, sig)) {
        e.live.fatal_signal = sig;
        kill(e);
    }
    return {};
}

void Daemon::kill(Entry& e) {
    if (e.live.sb && e.live.sb->cgroup && e.live.sb->cgroup->kill()) return;
    if (!e.record.cgroup_path.empty()) {
        auto cgroup = isolation::SandboxCgroup::open(e.record.cgroup_path);
        if (cgroup && cgroup->kill()) return;
    }
    if (e.live.pidfd) ::syscall(SYS_pidfd_send_signal, e.live.pidfd.get(), SIGKILL, nullptr, 0);
}

void Daemon::forget(const std::string& id) {
    Entry* e = table_.get(id);
    if (!e) return;
    records_.remove(id);
    for (const char* s : {"stdout", "stderr"}) {
        ::unlink(log_path(*e, s).c_str());
        ::unlink((log_path(*e, s) + ".1").c_str());
    }
    publish({{"event", "remove"}, {"id", id}, {"name", e->record.name}});
    table_.erase(id);
}

void Daemon::shutdown() {
    stopping_ = true;
    events_.grew().notify();
}

}  // namespace nucleus::core::daemon
