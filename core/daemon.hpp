// `nucleus daemon`: one reactor thread supervising every sandbox, with the
// HTTP/JSON API of docs/API.md on a unix socket.
//
//   <state-dir>/daemon/<id>.json     the daemon's record of each sandbox:
//                                    its spec document, phase, pid and start
//                                    time, exit; one JSON record per line,
//                                    the last complete line current
//                                    (core/daemon/record_store.hpp)
//   <state-dir>/sandboxes/<id>.json  the lifecycle's cleanup record (the
//                                    cgroup to remove), as `nucleus run`'s,
//                                    but out of reach of `nucleus run`'s gc
//   <log-dir>/<id>.{stdout,stderr}.log (+ .1 after rotation)
//
// Sandboxes do not die with the daemon. A restarted daemon re-adopts those
// still alive (pidfd_open, checked against the recorded start time and
// cgroup), records the end of those that exited meanwhile and removes
// whatever belongs to no live sandbox.
//
// The parts live in core/daemon/: startup.cpp (this header's functions),
// daemon.hpp (the Daemon: its table, events and actions), sandbox_table,
// record_store, recovery, runner (one sandbox's run on the reactor), routes
// and the endpoint groups (*_api.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace nucleus::core {

struct DaemonConfig {
    std::string socket = "/run/nucleus/nucleus.sock";
    std::string state_dir = "/var/lib/nucleus";
    std::string log_dir;  // default <state-dir>/logs
    std::string socket_group;
    uint64_t log_max_bytes = 8 << 20;
    size_t max_sandboxes = 10000;
    size_t keep_exited = 1000;  // exited sandboxes kept for inspect until removed
    std::string log_level = "info";  // the daemon's own log (core/log.hpp)
    std::string log_format = "text";  // text or json
    // --network bridge's runtime-wide settings (net/bridge_config.hpp);
    // empty: $NUCLEUS_BRIDGE, $NUCLEUS_BRIDGE_SUBNET, $NUCLEUS_BRIDGE_SUBNET6
    // or the defaults.
    std::string bridge, bridge_subnet, bridge_subnet6;
};

// The daemon's flags, bound to `config`.
void add_daemon_flags(CLI::App& app, DaemonConfig& config);

// Validates `config`, prepares the directories and the socket, recovers
// the recorded sandboxes and serves until SIGTERM/SIGINT. Returns the exit
// code (125 when it cannot start); on a normal stop it does not return but
// exits 0 at once, leaving every sandbox running for the next daemon.
int run_daemon(DaemonConfig config);

}  // namespace nucleus::core
