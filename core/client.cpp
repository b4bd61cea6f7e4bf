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
#include "io/http.hpp"
#include "io/http_client.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::core {

using nlohmann::json;

namespace {

// What a failure exits with (the workload's codes are its own).
constexpr int exit_client_error = 125;
// The sandbox ended but its exit status is unknown: a daemon restart
// re-adopted it (its status went to whoever reaped it). Listed with the
// other exit codes in `nucleus --help` (core/cli/main.cpp).
constexpr int exit_status_unknown = 123;

Result<json> answer(const io::http::Response& response) {
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

Result<json> DaemonClient::call(std::string_view method, const std::string& target, std::string_view body) const {
    auto response = io::http::request(socket_, method, target, body);
    if (!response) return std::move(response).error();
    return answer(*response);
}

Status DaemonClient::stream(const std::string& target, const std::function<bool(std::string_view)>& on_data) const {
    auto response = io::http::request_stream(socket_, "GET", target, on_data);
    if (!response) return std::move(response).error();
    if (response->status >= 300) return answer(*response).error();
    return {};
}

std::string sandbox_target(const std::string& id, std::string_view suffix) {
    return "/v1/sandboxes/" + io::http::percent_encode(id) + std::string(suffix);
}

bool write_out(int fd, std::string_view data) { return io::write_all(fd, data).ok(); }

std::string string_field(const json& object, const char* key) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return "";
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
}

// --- pure parts ----------------------------------------------------------------

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

}  // namespace nucleus::core
