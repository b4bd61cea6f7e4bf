// `nucleus daemon`: flags, checks and directories, the socket, recovery,
// then the reactor until SIGTERM/SIGINT.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>

#include "core/daemon.hpp"
#include "core/daemon/daemon.hpp"
#include "core/log.hpp"
#include "core/run.hpp"
#include "io/reactor.hpp"
#include "net/bridge_config.hpp"

namespace nucleus::core {

namespace {

int fail(const std::string& message) {
    std::fprintf(stderr, "nucleus: error: %s\n", message.c_str());
    return exit_runtime_error;
}

Result<gid_t> group_id(const std::string& name) {
    char* end = nullptr;
    long n = std::strtol(name.c_str(), &end, 10);
    if (!name.empty() && *end == '\0' && n >= 0) return static_cast<gid_t>(n);
    auto groups = io::read_file("/etc/group", 4 << 20);
    if (groups) {
        std::istringstream lines(*groups);
        for (std::string line; std::getline(lines, line);) {
            auto a = line.find(':'), b = line.find(':', a + 1), c = line.find(':', b + 1);
            if (a == std::string::npos || c == std::string::npos) continue;
            if (line.compare(0, a, name) == 0 && a == name.size())
                return static_cast<gid_t>(std::strtoul(line.c_str() + b + 1, nullptr, 10));
        }
    }
    return Error::plain("--socket-group: no group '" + name + "' in /etc/group");
}

// The state, record, cleanup-record and log directories (0700), and the
// socket's directory.
Status make_directories(const DaemonConfig& config) {
    std::error_code ec;
    for (const auto& dir :
         {config.state_dir, config.state_dir + "/daemon", config.state_dir + "/sandboxes", config.log_dir}) {
        std::filesystem::create_directories(dir, ec);
        if (ec) return Error{ec.value(), "creating " + dir};
        ::chmod(dir.c_str(), 0700);
    }
    std::filesystem::create_directories(std::filesystem::path(config.socket).parent_path(), ec);
    return {};
}

// What must hold before anything is created: flags, the group, io_uring.
Result<std::optional<gid_t>> check_config(DaemonConfig& config) {
    if (config.log_dir.empty()) config.log_dir = config.state_dir + "/logs";
    if (config.log_max_bytes < 4096) return Error::plain("--log-max-bytes must be at least 4096");
    std::optional<gid_t> group;
    if (!config.socket_group.empty()) {
        auto g = group_id(config.socket_group);
        if (!g) return std::move(g).error();
        group = *g;
    }
    NUCLEUS_TRY(io::check_io_uring());
    return group;
}

// Thousands of sandboxes hold a pidfd, two pipes and a cgroup fd each.
void raise_fd_limit() {
    rlimit nofile{};
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &nofile);
    }
}

}  // namespace

void add_daemon_flags(CLI::App& app, DaemonConfig& config) {
    app.add_option("--socket", config.socket, "The API's unix socket")->capture_default_str();
    app.add_option("--state-dir", config.state_dir, "Sandbox records (re-adopted after a restart)")
        ->capture_default_str();
    app.add_option("--log-dir", config.log_dir, "Sandbox output logs (default: STATE-DIR/logs)");
    app.add_option("--socket-group", config.socket_group, "Group allowed to use the socket (mode 0660)");
    app.add_option("--log-max-bytes", config.log_max_bytes, "Per stream cap before rotation (one old file kept)")
        ->capture_default_str();
    app.add_option("--max-sandboxes", config.max_sandboxes, "Sandboxes held at once (more get 429)")
        ->capture_default_str();
    app.add_option("--keep-exited", config.keep_exited, "Exited sandboxes kept for inspect before the oldest go")
        ->capture_default_str();
    app.add_option("--log-level", config.log_level, "The daemon's own log: debug, info, warning or error")
        ->capture_default_str();
    app.add_option("--log-format", config.log_format, "text, or json (one object per line, for log shippers)")
        ->capture_default_str();
    app.add_option("--bridge", config.bridge,
                   "Bridge of --network bridge sandboxes (default $NUCLEUS_BRIDGE or nucleus0)");
    app.add_option("--bridge-subnet", config.bridge_subnet,
                   "Its IPv4 subnet (default $NUCLEUS_BRIDGE_SUBNET or 10.201.0.0/16)");
    app.add_option("--bridge-subnet6", config.bridge_subnet6,
                   "Its IPv6 subnet, or none (default $NUCLEUS_BRIDGE_SUBNET6 or fd4e:7563:6c65::/64)");
}

// Flags over the environment, validated before anything starts.
static Status configure_bridge(const DaemonConfig& config) {
    auto env = [](const char* key, const std::string& flag) {
        const char* v = std::getenv(key);
        return !flag.empty() ? flag : v ? std::string(v) : std::string();
    };
    auto c = net::make_bridge_config(env("NUCLEUS_BRIDGE", config.bridge),
                                     env("NUCLEUS_BRIDGE_SUBNET", config.bridge_subnet),
                                     env("NUCLEUS_BRIDGE_SUBNET6", config.bridge_subnet6));
    if (!c) return std::move(c).error().wrap("--bridge, --bridge-subnet or --bridge-subnet6");
    net::set_runtime_bridge_config(std::move(*c));
    return {};
}

int run_daemon(DaemonConfig config) {
    if (auto st = log::configure(config.log_level, config.log_format); !st) return fail(st.error().describe());
    auto group = check_config(config);
    if (!group) return fail(group.error().describe());
    if (auto st = configure_bridge(config); !st) return fail(st.error().describe());
    raise_fd_limit();
    if (auto st = make_directories(config); !st) return fail(st.error().describe());
    auto paths = prepare_runtime_paths();
    if (!paths) return fail(paths.error().describe());
    // Staging and id leases are shared with `nucleus run`; cleanup records
    // are the daemon's own, out of reach of `nucleus run`'s gc.
    paths->sandboxes = config.state_dir + "/sandboxes";
    paths->kept = config.state_dir + "/kept";

    io::set_ring_entries(4096);
    ::signal(SIGPIPE, SIG_IGN);
    auto reactor = io::make_reactor();
    auto server = io::http::Server::listen(reactor.get_executor(), config.socket, 0660, *group);
    if (!server) return fail(server.error().describe());
    daemon::Daemon daemon(reactor, config, *paths);
    if (auto st = daemon.recover(); !st) return fail("recovering sandboxes: " + st.error().describe());
    asio::signal_set stop_signals(reactor, SIGINT, SIGTERM);
    bool signalled = false;
    stop_signals.async_wait([&](const std::error_code& err, int) {
        if (err) return;
        signalled = true;
        // Sandboxes keep running: a restarted daemon re-adopts them. Long
        // requests (wait, follow, events) are not waited for: the reactor
        // stops after one more turn, in which the server closes its
        // connections, and the process exits with every record current.
        daemon.shutdown();
        server->stop();
        asio::post(reactor, [&] { reactor.stop(); });
    });
    bool served = false;
    asio::co_spawn(reactor, server->serve([&daemon](const io::http::Request& req, io::http::Responder& res) {
        return daemon.handle(req, res);
    }),
                   [&](std::exception_ptr) {
                       served = true;
                       reactor.stop();  // supervision tasks are abandoned, not cancelled: their sandboxes live on
                   });
    log::info("listening on " + config.socket + " (state " + config.state_dir + ", logs " + config.log_dir + ")");
    reactor.run();
    // Supervision coroutines still hold sandboxes that live on; nothing is
    // torn down on the way out (records are current), so skip destructors
    // that would cancel them into a stopped reactor.
    std::fflush(nullptr);
    std::_Exit(served || signalled ? 0 : exit_runtime_error);
}

}  // namespace nucleus::core
