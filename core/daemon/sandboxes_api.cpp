// Endpoints on sandboxes as objects: create, list, inspect, remove, start,
// wait, kill, stop, stats (docs/API.md).
#include <signal.h>

#include <chrono>

#include <asio/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "core/daemon/api.hpp"
#include "core/daemon/daemon.hpp"
#include "core/daemon/query.hpp"
#include "core/events.hpp"
#include "core/signal_name.hpp"
#include "io/bytes_json.hpp"

namespace nucleus::core::daemon::api {

using nlohmann::json;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

namespace {

std::string short_id(const std::string& id) { return id.substr(0, 12); }

// The spec document of a create request, checked and resolved in place:
// the resolved document is what the records keep, so that recovery
// rebuilds the spec without the host files it named (they may be gone).
// 400 (sent here) and nullopt for anything the daemon cannot run.
asio::awaitable<std::optional<SandboxSpec>> read_spec(json& doc, io::http::Responder& res) {
    if (doc.is_discarded() || !doc.is_object()) {
        co_await res.send_error(400,
                                "the body must be a JSON object: the spec document (keys as nucleus run --config)");
        co_return std::nullopt;
    }
    auto resolved = resolve_document(doc, DocumentSource::Daemon);
    if (!resolved) {
        co_await res.send_error(400, resolved.error().describe());
        co_return std::nullopt;
    }
    doc = std::move(*resolved);
    auto spec = spec_from_resolved(doc, DocumentSource::Daemon);
    if (!spec) {
        co_await res.send_error(400, spec.error().describe());
        co_return std::nullopt;
    }
    if (spec->seccomp_mode == SeccompMode::Trace) {
        co_await res.send_error(400, "seccomp trace mode is only available with nucleus run");
        co_return std::nullopt;
    }
    co_return std::move(*spec);
}

// The sandbox's name, given or derived; empty (after a 4xx sent here) when
// it cannot be used. A name that could be read as an id prefix is refused:
// it could stand in for another sandbox's id (sandbox_table.hpp).
asio::awaitable<std::string> choose_name(Daemon& d, const SandboxSpec& spec, const std::string& id,
                                         io::http::Responder& res) {
    if (!spec.name.empty() && looks_like_id_prefix(spec.name)) {
        co_await res.send_error(400,
                                "name: \"" + spec.name +
                                    "\" could be read as an id prefix (4 to 32 hex digits); choose a name that is not");
        co_return "";
    }
    std::string name = spec.name.empty() ? "nucleus-" + short_id(id) : spec.name;
    if (d.table().name_taken(name)) {
        co_await res.send_error(409, "the name '" + name + "' is in use");
        co_return "";
    }
    co_return name;
}

// Old exited sandboxes beyond --keep-exited go, oldest first.
void prune_exited(Daemon& d) {
    size_t exited = d.table().count(Phase::Exited);
    if (exited <= d.config().keep_exited) return;
    for (const auto& id : d.table().oldest_exited(exited - d.config().keep_exited)) d.forget(id);
}

Entry& add_entry(Daemon& d, const std::string& id, const std::string& name, const json& doc, SandboxSpec spec) {
    auto e = std::make_unique<Entry>(d.executor());
    e->record.id = id;
    e->record.name = name;
    e->record.command = spec.command;
    e->record.mode = std::string(to_string(spec.mode));
    e->record.created_at = utc_timestamp();
    e->record.document = doc;
    e->spec = std::move(spec);
    ++d.counters().created_total;
    return d.table().add(std::move(e));
}

// Until the sandbox has exited, the timeout passed or the client left;
// true when it has exited (and is still there: it may be removed meanwhile).
asio::awaitable<bool> wait_exit(Daemon& d, const std::string& id, std::optional<double> timeout_s,
                                io::http::Responder& res) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer limit(ex, Clock::time_point::max());
    if (timeout_s)
        limit.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*timeout_s)));
    if (Entry* e = d.table().get(id); e && e->record.phase != Phase::Exited)
        (void)co_await (e->live.exited.wait() || limit.async_wait(asio::as_tuple(asio::use_awaitable)) ||
                        res.client_gone());
    Entry* cur = d.table().get(id);
    co_return cur && cur->record.phase == Phase::Exited;
}

asio::awaitable<void> refuse_long_wait(io::http::Responder& res) {
    co_await res.send_error(503, "too many streams and waits open; try again later");
}

}  // namespace

asio::awaitable<void> create(Daemon& d, Call& call) {
    auto& res = call.res;
    if (d.stopping()) co_return (void) co_await res.send_error(503, "the daemon is shutting down");
    auto start_now = query_flag(call.req, "start", true);
    if (!start_now) co_return (void) co_await res.send_error(400, start_now.error().message);
    json doc = json::parse(call.req.body, nullptr, false);
    auto spec = co_await read_spec(doc, res);
    if (!spec) co_return;
    size_t live = d.table().size() - d.table().count(Phase::Exited);
    if (live >= d.config().max_sandboxes)
        co_return (void) co_await res.send_error(
            429, "the daemon already holds " + std::to_string(live) + " sandboxes (--max-sandboxes)");
    std::string id = lifecycle::random_id();
    std::string name = co_await choose_name(d, *spec, id, res);
    if (name.empty()) co_return;
    auto audit = EventLog::to([&d](const json& record) { d.publish(record); });
    if (auto allowed = lifecycle::admit(*spec, audit); !allowed)
        co_return (void) co_await res.send_error(400, allowed.error().describe());
    Entry& entry = add_entry(d, id, name, doc, std::move(*spec));
    // A sandbox started at once is recorded when it runs (or fails): until
    // then its cleanup record (prepare()) is what a recovering daemon finds.
    if (!*start_now) d.persist(entry);
    d.publish({{"event", "create"}, {"id", id}, {"name", name}});
    prune_exited(d);
    if (*start_now) {
        if (auto st = co_await d.start(entry); !st)
            co_return (void) co_await res.send_error(500,
                                                     "starting sandbox " + short_id(id) + ": " + st.error().describe());
    }
    Entry* cur = d.table().get(id);
    if (!cur) co_return (void) co_await res.send_error(500, "sandbox " + short_id(id) + " was removed while starting");
    co_await res.send_json(201, sandbox_json(cur->record));
}

asio::awaitable<void> list(Daemon& d, Call& call) {
    auto all = query_flag(call.req, "all");
    if (!all) co_return (void) co_await call.res.send_error(400, all.error().message);
    json items = json::array();
    for (const auto& [id, e] : d.table())
        if (*all || e->record.phase != Phase::Exited) items.push_back(sandbox_json(e->record));
    json body = {{"sandboxes", std::move(items)}};
    co_await call.res.send_json(200, body);
}

asio::awaitable<void> inspect(Daemon&, Call& call) {
    Entry& e = *call.entry;
    json out = sandbox_json(e.record);
    if (!e.record.start_event.is_null()) out["start"] = e.record.start_event.get();
    if (e.record.phase == Phase::Running && !e.record.cgroup_path.empty())
        out["stats"] = lifecycle::stats_json(isolation::read_cgroup_stats(e.record.cgroup_path));
    if (!e.final_event.is_null()) out["final"] = e.final_event.get();
    co_await call.res.send_json(200, out);
}

asio::awaitable<void> remove(Daemon& d, Call& call) {
    auto& res = call.res;
    auto force = query_flag(call.req, "force");
    if (!force) co_return (void) co_await res.send_error(400, force.error().message);
    Entry* e = call.entry;
    if (e->record.phase == Phase::Starting || e->record.phase == Phase::Running) {
        if (!*force)
            co_return (void) co_await res.send_error(409, "sandbox " + short_id(call.id) + " is " +
                                                              phase_name(e->record.phase) +
                                                              "; stop it first or remove with force=true");
        if (e->live.removing)
            co_return (void) co_await res.send_error(409, "sandbox " + short_id(call.id) + " is already being removed");
        e->live.removing = true;
        if (e->record.phase == Phase::Starting) co_await e->live.started.wait();
        if (Entry* cur = d.table().get(call.id); cur && cur->record.phase == Phase::Running) {
            d.kill(*cur);
            co_await cur->live.exited.wait();
        }
    }
    if (d.table().get(call.id)) d.forget(call.id);
    co_await res.send_empty(204);
}

asio::awaitable<void> start(Daemon& d, Call& call) {
    Entry& e = *call.entry;
    if (e.record.phase != Phase::Created)
        co_return (void) co_await call.res.send_error(
            409, "sandbox " + short_id(call.id) + " is " + phase_name(e.record.phase) + ", not created");
    auto st = co_await d.start(e);
    Entry* cur = d.table().get(call.id);
    if (!st || !cur)
        co_return (void) co_await call.res.send_error(
            500, "starting sandbox " + short_id(call.id) + ": " +
                     (st ? std::string("removed while starting") : st.error().describe()));
    co_await call.res.send_json(200, sandbox_json(cur->record));
}

asio::awaitable<void> wait(Daemon& d, Call& call) {
    auto& res = call.res;
    auto timeout = query_seconds(call.req, "timeout");
    if (!timeout) co_return (void) co_await res.send_error(400, timeout.error().message);
    Entry& e = *call.entry;
    if (e.record.phase == Phase::Created)
        co_return (void) co_await res.send_error(409, "sandbox " + short_id(call.id) + " has not been started");
    if (e.record.phase != Phase::Exited && !res.enter_long_lived()) co_return co_await refuse_long_wait(res);
    bool exited = co_await wait_exit(d, call.id, *timeout, res);
    if (res.is_client_gone()) co_return;
    Entry* cur = d.table().get(call.id);
    if (!cur) co_return (void) co_await res.send_error(404, "sandbox " + short_id(call.id) + " was removed");
    if (!exited)
        co_return (void) co_await res.send_error(408,
                                                 "sandbox " + short_id(call.id) + " still running after the timeout");
    const PersistedSandbox& r = cur->record;
    json body = {{"exit_code", r.exit_code ? json(*r.exit_code) : json(nullptr)},
                 {"signal", r.signal ? json(*r.signal) : json(nullptr)},
                 {"reason", r.reason},
                 {"exit_known", !r.exit_unknown()}};
    co_await res.send_json(200, body);
}

asio::awaitable<void> kill(Daemon& d, Call& call) {
    int sig = SIGKILL;
    if (auto it = call.req.query.find("signal"); it != call.req.query.end()) {
        auto parsed = parse_signal(it->second);
        if (!parsed) co_return (void) co_await call.res.send_error(400, "signal: " + parsed.error().message);
        sig = *parsed;
    }
    if (auto st = d.send_signal(*call.entry, sig); !st)
        co_return (void) co_await call.res.send_error(st.error().code == ESRCH ? 409 : 500, st.error().describe());
    co_await call.res.send_empty(204);
}

asio::awaitable<void> stop(Daemon& d, Call& call) {
    auto& res = call.res;
    auto timeout = query_seconds(call.req, "timeout");
    if (!timeout) co_return (void) co_await res.send_error(400, timeout.error().message);
    double grace = timeout->value_or(10);
    Entry* cur = call.entry;
    if (cur->record.phase == Phase::Starting || cur->record.phase == Phase::Running) {
        if (!res.enter_long_lived()) co_return co_await refuse_long_wait(res);
        if (cur->record.phase == Phase::Starting) co_await cur->live.started.wait();
        cur = d.table().get(call.id);
    }
    if (cur && cur->record.phase == Phase::Running) {
        (void)d.send_signal(*cur, SIGTERM);
        bool exited = co_await wait_exit(d, call.id, grace, res);
        cur = d.table().get(call.id);
        if (cur && !exited && cur->record.phase == Phase::Running) {
            d.kill(*cur);
            co_await (cur->live.exited.wait() || res.client_gone());
            cur = d.table().get(call.id);
        }
    }
    if (res.is_client_gone()) co_return;
    if (!cur) co_return (void) co_await res.send_error(404, "sandbox " + short_id(call.id) + " was removed");
    co_await res.send_json(200, sandbox_json(cur->record));
}

asio::awaitable<void> stats(Daemon&, Call& call) {
    Entry& e = *call.entry;
    if (e.record.phase != Phase::Running || e.record.cgroup_path.empty())
        co_return (void) co_await call.res.send_error(
            409, "sandbox " + short_id(call.id) + " has no live cgroup (state " + phase_name(e.record.phase) + ")");
    json out = lifecycle::stats_json(isolation::read_cgroup_stats(e.record.cgroup_path));
    out["limit_events"] = lifecycle::counts_json(isolation::read_cgroup_event_counts(e.record.cgroup_path));
    co_await call.res.send_json(200, out);
}

}  // namespace nucleus::core::daemon::api
