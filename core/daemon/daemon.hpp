// The daemon's state and the actions every endpoint shares: the sandbox
// table, the record store, the event feed, the counters behind
// /v1/metrics, and starting, signalling, finishing and forgetting a
// sandbox. Everything runs on the one reactor thread; blocking preparation
// goes to the one worker thread (blocking()).
//
// Where the rest is:
//   runner.cpp      one sandbox's run on the reactor (run_entry)
//   recovery.cpp    reading the records back after a restart, re-adoption
//   routes.cpp      the route table and handle()
//   *_api.cpp       the endpoint groups
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "core/daemon.hpp"
#include "core/daemon/broadcast.hpp"
#include "core/daemon/record_store.hpp"
#include "core/daemon/sandbox_table.hpp"
#include "core/lifecycle.hpp"
#include "core/state.hpp"
#include "io/http.hpp"
#include "net/egress_service.hpp"
#include "net/upstream_resolver.hpp"

namespace nucleus::core::daemon {

constexpr const char* daemon_version = "0.1.0";

// The last 1024 events, each one NDJSON line, numbered; followers of
// /v1/events wait on `grew`.
class EventFeed {
public:
    explicit EventFeed(asio::any_io_executor ex) : grew_(ex) {}
    void publish(nlohmann::json event);
    const std::deque<std::pair<uint64_t, std::string>>& recent() const { return recent_; }
    uint64_t next() const { return next_; }
    Broadcast& grew() { return grew_; }

private:
    std::deque<std::pair<uint64_t, std::string>> recent_;
    uint64_t next_ = 0;
    Broadcast grew_;
};

struct Counters {
    uint64_t created_total = 0, started_total = 0, start_failures = 0, requests_total = 0;
    std::map<std::string, uint64_t> exits_by_reason;
    double spawn_seconds_sum = 0;
    uint64_t spawn_count = 0;
    std::map<std::string, uint64_t> egress_totals;  // summed EgressStats of exited sandboxes
};

class Daemon {
public:
    Daemon(asio::io_context& reactor, DaemonConfig config, RuntimePaths paths);

    SandboxTable& table() { return table_; }
    const DaemonConfig& config() const { return config_; }
    const RuntimePaths& paths() const { return paths_; }
    const RecordStore& records() const { return records_; }
    EventFeed& events() { return events_; }
    Counters& counters() { return counters_; }
    bool stopping() const { return stopping_; }
    asio::any_io_executor executor() { return reactor_.get_executor(); }
    asio::thread_pool& blocking() { return blocking_; }
    std::string log_path(const Entry& e, const char* stream) const;

    // Writes the entry's current record (record_store.hpp).
    void persist(Entry& e);
    void publish(nlohmann::json event) { events_.publish(std::move(event)); }

    // Starts a created entry: its run task is spawned; completes once it
    // runs or has failed (the error is the setup failure).
    asio::awaitable<Status> start(Entry& e);
    // The entry's end: phase, exit, counters, record, event, wake-ups.
    void finish(Entry& e, const lifecycle::Outcome& outcome, const nlohmann::json& final_event);
    // A signal to the sandbox's PID 1 (ESRCH when it is not running).
    Status send_signal(Entry& e, int sig);
    // Kills every process of the sandbox (SandboxCgroup::kill, or SIGKILL
    // to PID 1 without a cgroup).
    void kill(Entry& e);
    // Drops an entry and its record and logs.
    void forget(const std::string& id);
    // A task owned by the daemon (counted, its failure reported).
    void spawn_task(asio::awaitable<void> task);
    // Reads the records back: re-adopts, ends, cleans (recovery.cpp).
    Status recover();
    // The API: one request (routes.cpp).
    asio::awaitable<void> handle(const io::http::Request& req, io::http::Responder& res);
    // No new sandboxes; event streams end.
    void shutdown();
    // A cleanup record was kept (its cgroup could not be removed): gc
    // retries it later on the worker thread (recovery.cpp).
    void schedule_cleanup();
    // One resolver (and cache) for every --network egress sandbox.
    std::shared_ptr<net::UpstreamResolver> egress_resolver();

private:
    // Runs one sandbox to its end, whatever fails on the way (runner.cpp).
    asio::awaitable<void> run_entry(Entry* e);
    asio::awaitable<lifecycle::Outcome> prepare_and_supervise(Entry& e);
    asio::awaitable<lifecycle::Outcome> end_failed_run(Entry& e, std::string failure);
    void on_started(Entry& e, const io::ProcessHandle& process, double spawn_seconds);
    // Recovery (recovery.cpp): a recorded running sandbox is re-adopted
    // when it is still the same process, else ended.
    bool adopt(Entry& e);
    void end_unobserved(Entry& e);
    // A re-adopted sandbox, to its end (adoption.cpp).
    asio::awaitable<void> watch_adopted(Entry* e);
    asio::awaitable<void> follow_adopted(Entry& e, lifecycle::Outcome& outcome);
    asio::awaitable<void> retry_cleanup();
    // --network egress, re-adopted: its sockets made again (adoption.cpp).
    std::shared_ptr<net::EgressService> serve_adopted_egress(Entry& e);

    asio::io_context& reactor_;
    DaemonConfig config_;
    RuntimePaths paths_;
    RecordStore records_;
    // prepare(): copies, cgroup set-up, policy compilation; and the gc of
    // cleanup records whose cgroup could not be removed.
    asio::thread_pool blocking_{1};
    SandboxTable table_;
    EventFeed events_;
    Counters counters_;
    bool stopping_ = false;
    bool cleanup_scheduled_ = false;
    std::shared_ptr<net::UpstreamResolver> resolver_;
};

}  // namespace nucleus::core::daemon
