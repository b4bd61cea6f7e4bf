#include "core/events.hpp"

#include "io/append_file.hpp"

#include <fcntl.h>
#include <sys/time.h>

#include <ctime>

namespace nucleus::core {

std::string utc_timestamp() {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    tm parts{};
    ::gmtime_r(&now.tv_sec, &parts);
    char out[40];
    size_t n = std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &parts);
    std::snprintf(out + n, sizeof out - n, ".%03ldZ", now.tv_nsec / 1000000);
    return out;
}

Result<EventLog> EventLog::open(const std::optional<std::string>& path, std::optional<int> fd, std::string_view flag) {
    EventLog log;
    if (path) {
        auto file = io::open_append_file(*path);
        if (!file) return std::move(file).error().wrap("opening " + std::string(flag));
        log.file_ = std::move(*file);
    }
    if (fd) log.fd_ = *fd;
    return log;
}

EventLog EventLog::to(std::function<void(const nlohmann::json&)> callback) {
    EventLog log;
    log.callback_ = std::move(callback);
    return log;
}

Status EventLog::emit(nlohmann::json record) {
    record["time"] = utc_timestamp();
    if (callback_) callback_(record);
    std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    Status result;
    if (file_) {
        if (auto st = io::write_all(file_.get(), line); !st) result = std::move(st).error().wrap("writing events");
    }
    if (fd_ >= 0) {
        if (auto st = io::write_all(fd_, line); !st) result = std::move(st).error().wrap("writing events");
    }
    return result;
}

}  // namespace nucleus::core
