// GET /v1/health and GET /v1/metrics (Prometheus text format 0.0.4).
#include <dirent.h>

#include <cstdlib>

#include "core/daemon/api.hpp"
#include "core/daemon/daemon.hpp"

namespace nucleus::core::daemon::api {

using nlohmann::json;

namespace {

long resident_kib() {
    auto status = io::read_file("/proc/self/status", 64 << 10);
    if (!status) return 0;
    auto pos = status->find("\nVmRSS:");
    return pos == std::string::npos ? 0 : std::strtol(status->c_str() + pos + 7, nullptr, 10);
}

int open_fds() {
    int fds = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (::readdir(d)) ++fds;
        ::closedir(d);
        fds -= 2;  // "." and ".."
    }
    return fds;
}

// One metric: its HELP and TYPE lines, then its samples, each a suffix to
// the name (labels, or a summary's _sum and _count) and a value.
void metric(std::string& out, const char* name, const char* type, const char* help,
            const std::vector<std::pair<std::string, std::string>>& samples) {
    ((((out += "# HELP ") += name) += " ") += help) += "\n";
    ((((out += "# TYPE ") += name) += " ") += type) += "\n";
    for (const auto& [labels, value] : samples) ((((out += name) += labels) += " ") += value) += "\n";
}

std::string exposition(Daemon& d) {
    const Counters& c = d.counters();
    auto n = [](auto v) { return std::to_string(v); };
    std::vector<std::pair<std::string, std::string>> by_state, by_reason, egress;
    for (Phase p : {Phase::Created, Phase::Exited, Phase::Running, Phase::Starting})
        by_state.emplace_back(std::string("{state=\"") + phase_name(p) + "\"}", n(d.table().count(p)));
    for (const auto& [reason, count] : c.exits_by_reason)
        by_reason.emplace_back("{reason=\"" + reason + "\"}", n(count));
    for (const auto& [counter, count] : c.egress_totals) egress.emplace_back("{counter=\"" + counter + "\"}", n(count));
    std::string out;
    metric(out, "nucleus_sandboxes", "gauge", "Sandboxes known to the daemon, by state.", by_state);
    metric(out, "nucleus_sandboxes_created_total", "counter", "Sandboxes created through the API.",
           {{"", n(c.created_total)}});
    metric(out, "nucleus_sandboxes_started_total", "counter", "Sandboxes whose workload started.",
           {{"", n(c.started_total)}});
    metric(out, "nucleus_sandbox_start_failures_total", "counter", "Sandboxes that failed before their workload ran.",
           {{"", n(c.start_failures)}});
    metric(out, "nucleus_sandbox_exits_total", "counter", "Sandbox exits, by reason.", by_reason);
    metric(out, "nucleus_spawn_seconds", "summary", "Time from start request to running workload.",
           {{"_sum", n(c.spawn_seconds_sum)}, {"_count", n(c.spawn_count)}});
    metric(out, "nucleus_egress_total", "counter", "Egress decisions of sandboxes that have exited (--network egress).",
           egress);
    metric(out, "nucleus_api_requests_total", "counter", "API requests served.", {{"", n(c.requests_total)}});
    metric(out, "nucleus_daemon_resident_bytes", "gauge", "The daemon's resident set size.",
           {{"", n(resident_kib() * 1024L)}});
    metric(out, "nucleus_daemon_open_fds", "gauge", "File descriptors open in the daemon.", {{"", n(open_fds())}});
    return out;
}

}  // namespace

asio::awaitable<void> health(Daemon& d, Call& call) {
    json health = {{"status", d.stopping() ? "stopping" : "ok"},
                   {"version", daemon_version},
                   {"sandboxes", d.table().size()},
                   {"running", d.table().count(Phase::Running)}};
    co_await call.res.send_json(200, health);
}

asio::awaitable<void> metrics(Daemon& d, Call& call) {
    co_await call.res.send(200, "text/plain; version=0.0.4", exposition(d));
}

}  // namespace nucleus::core::daemon::api
