#include "core/client.hpp"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <set>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/cli.hpp"
#include "core/signal_name.hpp"
#include "core/spec.hpp"
#include "io/bytes_json.hpp"
#include "io/http.hpp"
#include "io/http_client.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::core {

using nlohmann::json;

namespace {

// What every failure exits with (the workload's codes are its own).
constexpr int exit_client_error = 125;
// The sandbox ended but its exit status is unknown: a daemon restart
// re-adopted it (its status went to whoever reaped it). Docker reports
// such a container as "Exited (255)" too.
constexpr int exit_status_unknown = 255;

int fail(const Error& e) {
    std::fprintf(stderr, "nucleus: error: %s\n", e.describe().c_str());
    return exit_client_error;
}

// One daemon, one socket: each call is one request.
class Daemon {
public:
    explicit Daemon(std::string socket) : socket_(std::move(socket)) {}

    // A 2xx answer's JSON (null for an empty body), or the daemon's
    // {"error": ...} message as the Error.
    Result<json> call(std::string_view method, const std::string& target, std::string_view body = {}) const {
        auto response = io::http::request(socket_, method, target, body);
        if (!response) return std::move(response).error();
        return answer(*response);
    }

    // A streamed 2xx body goes to on_data; an error answer becomes the Error.
    Status stream(const std::string& target, const std::function<bool(std::string_view)>& on_data) const {
        auto response = io::http::request_stream(socket_, "GET", target, on_data);
        if (!response) return std::move(response).error();
        if (response->status >= 300) return answer(*response).error();
        return {};
    }

private:
    static Result<json> answer(const io::http::Response& response) {
        json doc;
        if (!response.body.empty()) {
            doc = json::parse(response.body, nullptr, false);
            if (doc.is_discarded()) {
                if (response.status >= 300)
                    return Error::plain("the daemon answered " + std::to_string(response.status) + ": " + response.body);
                return Error::plain("the daemon's answer is not JSON");
            }
        }
        if (response.status >= 300) {
            if (doc.is_object() && doc.contains("error") && doc["error"].is_string())
                return Error::plain(doc["error"].get<std::string>());
            return Error::plain("the daemon answered " + std::to_string(response.status));
        }
        return doc;
    }

    std::string socket_;
};

std::string sandbox_target(const std::string& id, std::string_view suffix = {}) {
    return "/v1/sandboxes/" + io::http::percent_encode(id) + std::string(suffix);
}

// Writes a streamed piece to our stdout/stderr; false (stop) once the
// reader is gone.
bool write_out(int fd, std::string_view data) { return io::write_all(fd, data).ok(); }

std::string string_field(const json& object, const char* key) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return "";
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
}

// Quotes an argument the way a shell user would read it back.
std::string shell_word(const std::string& word) {
    bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](unsigned char c) {
        return std::isalnum(c) || std::strchr("-_./=:,+@%", c) != nullptr;
    });
    if (plain) return word;
    std::string out = "'";
    for (char c : word) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

std::string join_command(const json& command) {
    std::string out;
    if (!command.is_array()) return out;
    for (const auto& word : command) {
        if (!out.empty()) out += ' ';
        out += shell_word(word.is_string() ? word.get<std::string>() : word.dump());
    }
    return out;
}

// Cuts to `width` characters (UTF-8 aware), marking the cut with "…".
std::string truncate_text(const std::string& text, size_t width) {
    size_t chars = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
        if (chars == width - 1) {
            size_t rest = 0;
            for (size_t j = i; j < text.size(); ++j)
                if ((static_cast<unsigned char>(text[j]) & 0xC0) != 0x80) ++rest;
            if (rest > 1) return text.substr(0, i) + "…";
            return text;
        }
        ++chars;
    }
    return text;
}

// Flattened "a.b: value" lines for human-readable stats.
void flatten(const json& value, const std::string& prefix, std::string& out) {
    if (value.is_object()) {
        for (const auto& [key, item] : value.items()) flatten(item, prefix.empty() ? key : prefix + "." + key, out);
    } else {
        out += prefix + ": " + (value.is_string() ? value.get<std::string>() : value.dump()) + "\n";
    }
}

}  // namespace

// --- pure parts ----------------------------------------------------------------

void absolutize_document_paths(json& document, const std::filesystem::path& cwd) {
    if (!document.is_object()) return;
    auto absolute = [&](std::string path) {
        if (path.empty() || path[0] == '/') return path;
        return (cwd / path).string();
    };
    for (const char* key : {"rootfs", "workspace", "context", "log_dir", "events_jsonl", "seccomp_log",
                            "seccomp_profile", "caps_policy", "landlock_policy", "audit_log"}) {
        auto it = document.find(key);
        if (it != document.end() && it->is_string()) *it = absolute(it->get<std::string>());
    }
    // Lists whose entries are a host path, or a host path before the first ':'.
    for (const auto& [key, prefix_only] : {std::pair{"env_file", false}, {"volume", true}, {"secret", true}}) {
        auto it = document.find(key);
        if (it == document.end() || !it->is_array()) continue;
        for (auto& entry : *it) {
            if (!entry.is_string()) continue;
            std::string text = entry.get<std::string>();
            size_t colon = prefix_only ? text.find(':') : std::string::npos;
            std::string source = text.substr(0, colon);
            if (source.empty()) continue;
            entry = absolute(source) + (colon == std::string::npos ? "" : text.substr(colon));
        }
    }
}

std::string time_ago(std::chrono::system_clock::duration elapsed) {
    using namespace std::chrono;
    double seconds = duration<double>(elapsed).count();
    auto count = [](double v, const char* unit) {
        long n = static_cast<long>(v);
        return std::to_string(n) + " " + unit + (n == 1 ? "" : "s") + " ago";
    };
    if (seconds < 1) return "Less than a second ago";
    if (seconds < 60) return count(seconds, "second");
    double minutes = seconds / 60;
    if (minutes < 2) return "About a minute ago";
    if (minutes < 60) return count(minutes, "minute");
    double hours = seconds / 3600 + 0.5;  // rounded, as Docker does
    if (hours < 2) return "About an hour ago";
    if (hours < 48) return count(hours, "hour");
    if (hours < 24 * 7 * 2) return count(hours / 24, "day");
    if (hours < 24 * 30 * 2) return count(hours / 24 / 7, "week");
    if (hours < 24 * 365 * 2) return count(hours / 24 / 30, "month");
    return count(hours / 24 / 365, "year");
}

Result<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text) {
    std::tm tm{};
    std::string copy(text);
    const char* rest = ::strptime(copy.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) return Error::plain("\"" + copy + "\" is not a timestamp");
    long nanos = 0;
    if (*rest == '.') {
        long scale = 100000000;
        for (++rest; *rest >= '0' && *rest <= '9'; ++rest, scale /= 10) nanos += (*rest - '0') * scale;
    }
    if (std::string_view(rest) != "Z") return Error::plain("\"" + copy + "\" is not a UTC timestamp");
    auto seconds = std::chrono::seconds(::timegm(&tm));
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(seconds + std::chrono::nanoseconds(nanos)));
}

std::string format_sandbox_table(const json& sandboxes, std::chrono::system_clock::time_point now, bool truncate) {
    std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "STATE", "PID", "CREATED", "EXIT", "COMMAND"}};
    if (sandboxes.is_array()) {
        for (const auto& s : sandboxes) {
            if (!s.is_object()) continue;
            std::string id = string_field(s, "id");
            std::string pid = string_field(s, "pid");
            std::string exit = string_field(s, "exit_code");
            std::string created = "-";
            if (auto at = parse_timestamp(string_field(s, "created_at")))
                created = time_ago(std::max(now - *at, std::chrono::system_clock::duration::zero()));
            std::string command = join_command(s.value("command", json()));
            rows.push_back({truncate ? id.substr(0, 12) : id, string_field(s, "name"), string_field(s, "state"),
                            pid.empty() ? "-" : pid, created, exit.empty() ? "-" : exit,
                            truncate && !command.empty() ? truncate_text(command, 30) : command});
        }
    }
    std::vector<size_t> widths(rows[0].size(), 0);
    for (const auto& row : rows)
        for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 3, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
    }
    return out;
}

int exit_status_of(const json& result) {
    if (!result.is_object()) return exit_client_error;
    if (auto known = result.find("exit_known"); known != result.end() && *known == false) return exit_status_unknown;
    auto code = result.find("exit_code");
    if (code != result.end() && code->is_number_integer()) return code->get<int>();
    auto sig = result.find("signal");
    if (sig != result.end() && sig->is_number_integer()) return 128 + sig->get<int>();
    return exit_client_error;
}

// --- the commands ----------------------------------------------------------------

namespace {

const std::vector<std::pair<std::string, std::string>> summaries = {
    {"create", "Create (and start) a sandbox through the daemon; attach unless -d"},
    {"start", "Start a created sandbox"},
    {"ps", "List sandboxes"},
    {"inspect", "Show a sandbox as JSON"},
    {"logs", "Print a sandbox's output"},
    {"stop", "Stop sandboxes: SIGTERM, then SIGKILL after a timeout"},
    {"kill", "Send a signal to sandboxes"},
    {"rm", "Remove sandboxes"},
    {"exec", "Run a command in a running sandbox"},
    {"stats", "Show a sandbox's resource usage"},
    {"wait", "Wait for a sandbox to exit; print and exit with its code (\"unknown\" and 255 after a daemon restart lost it)"},
};

// create -d: print the id; create: follow both outputs, then exit with the
// sandbox's code, as `docker run` does.
int attach(const Daemon& daemon, const std::string& id) {
    Status streams[2];
    auto follow = [&](int index, const char* stream, int fd) {
        streams[index] = daemon.stream(sandbox_target(id, "/logs") + "?stream=" + stream + "&follow=true",
                                       [fd](std::string_view data) { return write_out(fd, data); });
    };
    std::thread err(follow, 1, "stderr", STDERR_FILENO);
    follow(0, "stdout", STDOUT_FILENO);
    err.join();
    for (const auto& st : streams)
        if (!st) std::fprintf(stderr, "nucleus: warning: following the output: %s\n", st.error().describe().c_str());
    auto result = daemon.call("POST", sandbox_target(id, "/wait"));
    if (!result) return fail(result.error());
    return exit_status_of(*result);
}

int create_command(const Daemon& daemon, const RunFlags& flags, const CLI::App& create,
                   const std::vector<std::string>& command, bool detach, bool no_start) {
    auto doc = run_document(flags, create, command);
    if (!doc) return fail(doc.error());
    // Descriptors do not cross the socket; the daemon has its own.
    if (doc->contains("env_fd"))
        return fail(Error::plain("--env-fd is not available through the daemon; pass the variables with -e or --env-file"));
    if (doc->contains("events_fd"))
        return fail(Error::plain("--events-fd is not available through the daemon; read GET /v1/events or use --events-jsonl"));
    // A bare -e KEY takes this shell's value, not the daemon's.
    if (auto env = doc->find("env"); env != doc->end() && env->is_array()) {
        json resolved = json::array();
        for (const auto& entry : *env) {
            if (entry.is_string() && entry.get<std::string>().find('=') == std::string::npos) {
                if (const char* value = ::getenv(entry.get<std::string>().c_str()))
                    resolved.push_back(entry.get<std::string>() + "=" + value);
                continue;
            }
            resolved.push_back(entry);
        }
        *env = std::move(resolved);
    }
    std::error_code ec;
    auto cwd = std::filesystem::current_path(ec);
    if (ec) return fail(Error::from_errno("the current directory", ec.value()));
    absolutize_document_paths(*doc, cwd);
    // Checked here for a prompt, local answer; the daemon checks again.
    if (auto spec = spec_from_document(*doc); !spec) return fail(spec.error());

    auto created = daemon.call("POST", std::string("/v1/sandboxes") + (no_start ? "?start=false" : ""), doc->dump());
    if (!created) return fail(created.error());
    std::string id = string_field(*created, "id");
    if (id.empty()) return fail(Error::plain("the daemon's answer has no sandbox id"));
    if (detach || no_start) {
        std::printf("%s\n", id.c_str());
        return 0;
    }
    return attach(daemon, id);
}

// For stop, kill, rm: each id in turn; the ids done are printed, failures
// reported, and the exit code says whether all went well.
int for_each_id(const std::vector<std::string>& ids, const std::function<Status(const std::string&)>& action) {
    int status = 0;
    for (const auto& id : ids) {
        if (auto st = action(id); !st) status = fail(st.error());
        else std::printf("%s\n", id.c_str());
    }
    return status;
}

// `exec ID [FLAGS] -- CMD...` or `exec [FLAGS] ID CMD...`: the command
// starts after "--" or at the second token that is not a flag or a value.
size_t exec_command_start(int argc, char** argv, const std::set<std::string>& takes_value) {
    int positionals = 0;
    for (int i = 2; i < argc; ++i) {
        std::string token = argv[i];
        if (token == "--") return static_cast<size_t>(i);
        if (token.size() >= 2 && token[0] == '-') {
            if (token.find('=') == std::string::npos && takes_value.count(token)) ++i;
            continue;
        }
        if (++positionals == 2) return static_cast<size_t>(i);
    }
    return static_cast<size_t>(argc);
}

}  // namespace

bool is_client_command(std::string_view name) {
    return std::any_of(summaries.begin(), summaries.end(), [&](const auto& s) { return s.first == name; });
}

const std::vector<std::pair<std::string, std::string>>& client_command_summaries() { return summaries; }

int client_main(int argc, char** argv) {
    CLI::App app{"Nucleus: commands for sandboxes run by `nucleus daemon`.", "nucleus"};
    app.require_subcommand(1);
    auto sub = [&](const char* name) {
        auto it = std::find_if(summaries.begin(), summaries.end(), [&](const auto& s) { return s.first == name; });
        return app.add_subcommand(name, it->second);
    };

    std::string socket = default_daemon_socket;
    if (const char* env = ::getenv("NUCLEUS_SOCKET"); env && *env) socket = env;

    auto* create = sub("create");
    RunFlags flags;
    add_run_flags(*create, flags);
    bool detach = false, no_start = false;
    create->add_flag("-d,--detach", detach, "Print the id and return instead of following the output");
    create->add_flag("--no-start", no_start, "Only create the sandbox (start it with `nucleus start`)");
    flags.takes_value.insert("--socket");

    std::string id;
    std::vector<std::string> ids;
    auto* start = sub("start");
    start->add_option("id", id, "Sandbox id, id prefix or name")->required();

    auto* ps = sub("ps");
    bool all = false, as_json = false, quiet = false, no_trunc = false;
    ps->add_flag("-a,--all", all, "Include exited sandboxes");
    ps->add_flag("--json", as_json, "Print the sandbox objects as JSON");
    ps->add_flag("-q,--quiet", quiet, "Print only the ids");
    ps->add_flag("--no-trunc", no_trunc, "Do not shorten ids and commands");

    auto* inspect = sub("inspect");
    inspect->add_option("id", id, "Sandbox id, id prefix or name")->required();
    inspect->add_flag("--json", as_json, "JSON output (the default and only format)");

    auto* logs = sub("logs");
    bool follow = false, from_stderr = false;
    int tail = -1;
    logs->add_flag("-f,--follow", follow, "Keep printing output until the sandbox exits");
    logs->add_option("-n,--tail", tail, "Only the last N lines");
    logs->add_flag("--stderr", from_stderr, "The sandbox's stderr instead of its stdout");
    logs->add_option("id", id, "Sandbox id, id prefix or name")->required();

    auto* stop = sub("stop");
    double stop_timeout = -1;
    stop->add_option("-t,--timeout", stop_timeout, "Seconds between SIGTERM and SIGKILL (daemon default 10)");
    stop->add_option("ids", ids, "Sandbox ids, id prefixes or names")->required();

    auto* kill = sub("kill");
    std::string signal_name = "KILL";
    kill->add_option("-s,--signal", signal_name, "Signal name or number (default KILL)");
    kill->add_option("ids", ids, "Sandbox ids, id prefixes or names")->required();

    auto* rm = sub("rm");
    bool force = false;
    rm->add_flag("-f,--force", force, "Kill a running sandbox first");
    rm->add_option("ids", ids, "Sandbox ids, id prefixes or names")->required();

    auto* exec = sub("exec");
    std::vector<std::string> exec_env;
    std::string exec_workdir;
    exec->add_option("-e,--env", exec_env, "Set KEY=VALUE (repeatable)");
    exec->add_option("-w,--workdir", exec_workdir, "Working directory inside the sandbox");
    exec->add_option("id", id, "Sandbox id, id prefix or name")->required();
    exec->footer("Usage: nucleus exec [FLAGS] ID -- COMMAND [ARG...]");

    auto* stats = sub("stats");
    stats->add_option("id", id, "Sandbox id, id prefix or name")->required();
    stats->add_flag("--json", as_json, "Print the stats as JSON");

    auto* wait = sub("wait");
    wait->add_option("id", id, "Sandbox id, id prefix or name")->required();

    for (auto* command : app.get_subcommands({}))
        command->add_option("--socket", socket, "The daemon's socket (default: $NUCLEUS_SOCKET, else " +
                                                    std::string(default_daemon_socket) + ")");

    // The command of create and exec is split off before CLI11 sees it
    // (its prefix_command mishandles "--").
    std::string name = argv[1];
    size_t split = static_cast<size_t>(argc);
    if (name == "create") split = command_start(argc, argv, 1, flags);
    if (name == "exec") split = exec_command_start(argc, argv, {"-e", "--env", "-w", "--workdir", "--socket"});
    std::vector<std::string> command;
    size_t first = split < static_cast<size_t>(argc) && std::string(argv[split]) == "--" ? split + 1 : split;
    for (size_t i = first; i < static_cast<size_t>(argc); ++i) command.push_back(argv[i]);
    try {
        app.parse(static_cast<int>(split), argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "nucleus: error: %s\nSee 'nucleus %s --help'.\n", e.what(), name.c_str());
        return exit_client_error;
    }

    Daemon daemon(socket);
    if (create->parsed()) return create_command(daemon, flags, *create, command, detach, no_start);
    if (start->parsed()) {
        auto r = daemon.call("POST", sandbox_target(id, "/start"));
        if (!r) return fail(r.error());
        std::printf("%s\n", id.c_str());
        return 0;
    }
    if (ps->parsed()) {
        auto r = daemon.call("GET", std::string("/v1/sandboxes") + (all ? "?all=true" : ""));
        if (!r) return fail(r.error());
        json list = r->is_object() ? r->value("sandboxes", json::array()) : json::array();
        if (as_json) {
            std::printf("%s\n", list.dump(2).c_str());
        } else if (quiet) {
            for (const auto& s : list) {
                std::string sid = string_field(s, "id");
                std::printf("%s\n", (no_trunc ? sid : sid.substr(0, 12)).c_str());
            }
        } else {
            std::fputs(format_sandbox_table(list, std::chrono::system_clock::now(), !no_trunc).c_str(), stdout);
        }
        return 0;
    }
    if (inspect->parsed()) {
        auto r = daemon.call("GET", sandbox_target(id));
        if (!r) return fail(r.error());
        std::printf("%s\n", r->dump(2).c_str());
        return 0;
    }
    if (logs->parsed()) {
        std::string target = sandbox_target(id, "/logs") + "?stream=" + (from_stderr ? "stderr" : "stdout");
        if (tail >= 0) target += "&tail=" + std::to_string(tail);
        if (follow) target += "&follow=true";
        auto st = daemon.stream(target, [](std::string_view data) { return write_out(STDOUT_FILENO, data); });
        return st ? 0 : fail(st.error());
    }
    if (stop->parsed()) {
        std::string query = stop_timeout >= 0 ? "?timeout=" + std::to_string(static_cast<long>(stop_timeout)) : "";
        return for_each_id(ids, [&](const std::string& sid) -> Status {
            auto r = daemon.call("POST", sandbox_target(sid, "/stop") + query);
            return r ? Status{} : Status(std::move(r).error());
        });
    }
    if (kill->parsed()) {
        auto number = parse_signal(signal_name);
        if (!number) return fail(number.error());
        return for_each_id(ids, [&](const std::string& sid) -> Status {
            auto r = daemon.call("POST", sandbox_target(sid, "/kill") + "?signal=" + std::to_string(*number));
            return r ? Status{} : Status(std::move(r).error());
        });
    }
    if (rm->parsed()) {
        return for_each_id(ids, [&](const std::string& sid) -> Status {
            auto r = daemon.call("DELETE", sandbox_target(sid) + (force ? "?force=true" : ""));
            return r ? Status{} : Status(std::move(r).error());
        });
    }
    if (exec->parsed()) {
        if (command.empty()) return fail(Error::plain("exec: no command given (nucleus exec ID -- COMMAND...)"));
        json body = {{"command", command}};
        if (!exec_env.empty()) body["env"] = exec_env;
        if (!exec_workdir.empty()) body["workdir"] = exec_workdir;
        auto r = daemon.call("POST", sandbox_target(id, "/exec"), body.dump());
        if (!r) return fail(r.error());
        // Output is bytes: a string, or {"base64": ...} when not UTF-8.
        for (auto [key, fd] : {std::pair{"stdout", STDOUT_FILENO}, std::pair{"stderr", STDERR_FILENO}})
            if (auto bytes = io::bytes_from_json(r->value(key, json("")), key)) write_out(fd, *bytes);
        return exit_status_of(*r);
    }
    if (stats->parsed()) {
        auto r = daemon.call("GET", sandbox_target(id, "/stats"));
        if (!r) return fail(r.error());
        if (as_json) {
            std::printf("%s\n", r->dump(2).c_str());
        } else {
            std::string out;
            flatten(*r, "", out);
            std::fputs(out.c_str(), stdout);
        }
        return 0;
    }
    if (wait->parsed()) {
        auto r = daemon.call("POST", sandbox_target(id, "/wait"));
        if (!r) return fail(r.error());
        int code = exit_status_of(*r);
        bool unknown = r->is_object() && r->contains("exit_known") && (*r)["exit_known"] == false;
        std::printf("%s\n", unknown ? "unknown" : std::to_string(code).c_str());
        return code;
    }
    return 0;
}

}  // namespace nucleus::core
