// spdlog header-only, in this file alone (its compile definitions are set in
// core/CMakeLists.txt): Debian ships neither spdlog nor fmt as a static
// archive, and the static binary links no shared library.
#include "core/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <memory>

#include "io/bytes_json.hpp"

namespace nucleus::core::log {

namespace {

std::shared_ptr<spdlog::logger> logger;

const char* level_name(spdlog::level::level_enum level) {
    switch (level) {
        case spdlog::level::trace:
        case spdlog::level::debug:
            return "debug";
        case spdlog::level::info:
            return "info";
        case spdlog::level::warn:
            return "warning";
        case spdlog::level::err:
        case spdlog::level::critical:
            return "error";
        case spdlog::level::off:
        case spdlog::level::n_levels:
            break;
    }
    return "info";
}

// 2026-12-03T19:20:01.123Z
std::string utc_time(spdlog::log_clock::time_point when) {
    auto since = when.time_since_epoch();
    std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since).count();
    auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    char fraction[16];
    std::snprintf(fraction, sizeof fraction, ".%03dZ", static_cast<int>(millis));
    return std::string(date) + fraction;
}

// One line per record, whatever bytes the message holds: the text form
// replaces line breaks, the JSON form escapes everything.
class Formatter final : public spdlog::formatter {
public:
    explicit Formatter(bool json) : json_(json) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string message(msg.payload.data(), msg.payload.size());
        std::string line;
        if (json_) {
            line = io::dump_json(
                {{"time", utc_time(msg.time)}, {"level", level_name(msg.level)}, {"msg", io::bytes_json(message)}});
        } else {
            for (char& c : message)
                if (c == '\n' || c == '\r') c = ' ';
            line = utc_time(msg.time) + " " + level_name(msg.level) + " " + message;
        }
        line += '\n';
        dest.append(line.data(), line.data() + line.size());
    }

    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<Formatter>(json_); }

private:
    bool json_;
};

void write(spdlog::level::level_enum level, const std::string& message) {
    if (logger) logger->log(level, spdlog::string_view_t(message.data(), message.size()));
}

}  // namespace

Status configure(const std::string& level, const std::string& format) {
    spdlog::level::level_enum parsed;
    if (level == "debug") parsed = spdlog::level::debug;
    else if (level == "info") parsed = spdlog::level::info;
    else if (level == "warning" || level == "warn") parsed = spdlog::level::warn;
    else if (level == "error") parsed = spdlog::level::err;
    else return Error::plain("--log-level must be debug, info, warning or error, got \"" + level + "\"");
    if (format != "text" && format != "json")
        return Error::plain("--log-format must be text or json, got \"" + format + "\"");
    // stderr, one write per record; the _mt sink's mutex because the daemon
    // logs from its reactor thread and from its one worker thread.
    logger = std::make_shared<spdlog::logger>("nucleus", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_formatter(std::make_unique<Formatter>(format == "json"));
    logger->set_level(parsed);
    logger->flush_on(spdlog::level::trace);
    return {};
}

bool configured() { return logger != nullptr; }

void debug(const std::string& message) { write(spdlog::level::debug, message); }
void info(const std::string& message) { write(spdlog::level::info, message); }
void warning(const std::string& message) { write(spdlog::level::warn, message); }
void error(const std::string& message) { write(spdlog::level::err, message); }

}  // namespace nucleus::core::log
