// The client side of the daemon's API (docs/API.md), for the commands in
// core/cli/ that talk to `nucleus daemon`: create, start, ps, inspect, logs,
// stop, kill, rm, exec, stats, wait. Each is one or a few blocking HTTP
// requests on the daemon's unix socket (io/http_client.hpp); nothing here
// runs a reactor.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/signal_name.hpp"  // parse_signal, shared with the daemon
#include "io/error.hpp"

namespace nucleus::core {

// The socket when neither --socket nor NUCLEUS_SOCKET says otherwise.
inline constexpr const char* default_daemon_socket = "/run/nucleus/nucleus.sock";

// One daemon, one socket: each call is one request.
class DaemonClient {
public:
    explicit DaemonClient(std::string socket) : socket_(std::move(socket)) {}

    // A 2xx answer's JSON (null for an empty body), or the daemon's
    // {"error": ...} message as the Error.
    Result<nlohmann::json> call(std::string_view method, const std::string& target, std::string_view body = {}) const;

    // A streamed 2xx body goes to on_data; an error answer becomes the Error.
    Status stream(const std::string& target, const std::function<bool(std::string_view)>& on_data) const;

private:
    std::string socket_;
};

// "/v1/sandboxes/<id, percent-encoded><suffix>".
std::string sandbox_target(const std::string& id, std::string_view suffix = {});

// Writes a streamed piece to our stdout/stderr; false (stop) once the
// reader is gone.
bool write_out(int fd, std::string_view data);

// A field as text: strings as they are, other values as JSON, null as "".
std::string string_field(const nlohmann::json& object, const char* key);

// --- The pure parts, exposed for tests ------------------------------------

// Docker's wording: "Less than a second ago", "3 seconds ago",
// "About a minute ago", "5 minutes ago", "About an hour ago", "3 hours ago",
// "2 days ago", "3 weeks ago", "4 months ago", "2 years ago".
std::string time_ago(std::chrono::system_clock::duration elapsed);

// "2026-12-02T02:40:00.123Z" (UTC, fraction optional).
Result<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text);

// `nucleus ps`: the sandbox objects of GET /v1/sandboxes as a table with
// the columns ID (12 characters), NAME, STATE, PID, CREATED, EXIT, COMMAND,
// aligned like `docker ps`. With truncate, COMMAND is cut to 30 characters
// and IDs to 12.
std::string format_sandbox_table(const nlohmann::json& sandboxes, std::chrono::system_clock::time_point now,
                                 bool truncate = true);

// The process exit code a finished sandbox stands for: 123 when its exit
// status is unknown (exit_known false: a daemon restart lost it), else its
// exit_code, else 128 + signal, else 125 (no result: the runtime failed).
int exit_status_of(const nlohmann::json& result);

}  // namespace nucleus::core
