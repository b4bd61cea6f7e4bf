// The daemon's own log, through spdlog: levels, and a JSON form for log
// shippers (`nucleus daemon --log-level LEVEL --log-format text|json`).
//
//   text: 2026-12-03T19:20:01.123Z warning sandbox 3f2a...: ...
//   json: {"time":"2026-12-03T19:20:01.123Z","level":"warning","msg":"..."}
//
// Messages are bytes (they name host paths): in JSON a message that is not
// UTF-8 is {"base64": "..."}, as everywhere in the API (io/bytes_json.hpp).
// Until configure() is called (as in `nucleus run`), nothing here is set
// up and lifecycle::report_* print their plain "nucleus: error: ..." lines.
#pragma once

#include <string>

#include "io/error.hpp"

namespace nucleus::core::log {

// "debug", "info", "warning" (or "warn"), "error"; "text" or "json".
Status configure(const std::string& level, const std::string& format);
bool configured();

void debug(const std::string& message);
void info(const std::string& message);
void warning(const std::string& message);
void error(const std::string& message);

}  // namespace nucleus::core::log
