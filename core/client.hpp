// The `nucleus` commands that talk to `nucleus daemon` over its API
// (docs/API.md): create, start, ps, inspect, logs, stop, kill, rm, exec,
// stats, wait. Each is one or a few blocking HTTP requests on the daemon's
// unix socket (io/http_client.hpp); nothing here runs a reactor.
//
// Errors print "nucleus: error: <the daemon's message>" and exit 125, as do
// an unreachable daemon and bad flags.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/signal_name.hpp"  // parse_signal, shared with the daemon
#include "io/error.hpp"

namespace nucleus::core {

// The socket when neither --socket nor NUCLEUS_SOCKET says otherwise.
inline constexpr const char* default_daemon_socket = "/run/nucleus/nucleus.sock";

// True for the subcommands client_main serves ("ps", "create", ...).
bool is_client_command(std::string_view name);
// The subcommands and their one-line help, for `nucleus --help`.
const std::vector<std::pair<std::string, std::string>>& client_command_summaries();

// argv[1] is one of the client commands; returns the process exit code.
int client_main(int argc, char** argv);

// --- The pure parts, exposed for tests ------------------------------------

// Host paths in a spec document made absolute against `cwd` (the daemon has
// its own working directory): rootfs, workspace, context, log_dir,
// events_jsonl, seccomp_log, seccomp_profile, caps_policy, landlock_policy,
// audit_log, every env_file, the SRC of each volume (SRC:DST[:MODE]) and
// secret (SRC[:NAME]). Paths inside the sandbox (workdir, volume targets)
// and values of the wrong type (left for validation to name) are untouched.
void absolutize_document_paths(nlohmann::json& document, const std::filesystem::path& cwd);


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

// The process exit code a finished sandbox stands for: its exit_code, else
// 128 + signal, else 125 (no result: the runtime failed).
int exit_status_of(const nlohmann::json& result);

}  // namespace nucleus::core
