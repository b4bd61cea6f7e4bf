// The endpoint groups, one file each: sandboxes_api.cpp (create, list,
// inspect, remove, start, wait, kill, stop, stats), streams_api.cpp (logs,
// events), exec_api.cpp, metrics_api.cpp (health, metrics). Each is an
// Endpoint of the route table (routes.cpp).
#pragma once

#include <asio/awaitable.hpp>

#include "core/daemon/routes.hpp"

namespace nucleus::core::daemon::api {

asio::awaitable<void> create(Daemon& d, Call& call);
asio::awaitable<void> list(Daemon& d, Call& call);
asio::awaitable<void> inspect(Daemon& d, Call& call);
asio::awaitable<void> remove(Daemon& d, Call& call);
asio::awaitable<void> start(Daemon& d, Call& call);
asio::awaitable<void> wait(Daemon& d, Call& call);
asio::awaitable<void> kill(Daemon& d, Call& call);
asio::awaitable<void> stop(Daemon& d, Call& call);
asio::awaitable<void> stats(Daemon& d, Call& call);

asio::awaitable<void> logs(Daemon& d, Call& call);
asio::awaitable<void> events(Daemon& d, Call& call);

asio::awaitable<void> exec(Daemon& d, Call& call);

asio::awaitable<void> health(Daemon& d, Call& call);
asio::awaitable<void> metrics(Daemon& d, Call& call);

}  // namespace nucleus::core::daemon::api
