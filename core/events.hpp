// Lifecycle events: one JSON object per line (JSON Lines), written with
// write(2) to --events-jsonl PATH (appended) and/or --events-fd N.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "io/unique_fd.hpp"

namespace nucleus::core {

class EventLog {
public:
    static Result<EventLog> open(const std::optional<std::string>& path, std::optional<int> fd, std::string_view flag);
    // Records go to `callback` (with their "time" added) instead of a file.
    static EventLog to(std::function<void(const nlohmann::json&)> callback);

    // Adds "time" (RFC 3339, UTC, ms) and writes one line. Failures are
    // returned; a broken event sink never stops the sandbox.
    Status emit(nlohmann::json record);
    bool enabled() const { return file_.valid() || fd_ >= 0 || callback_; }

private:
    io::unique_fd file_;
    int fd_ = -1;  // borrowed: the caller's --events-fd stays theirs
    std::function<void(const nlohmann::json&)> callback_;
};

std::string utc_timestamp();

}  // namespace nucleus::core
