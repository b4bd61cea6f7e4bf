// What every report shares: the machine it ran on, a progress line on
// stderr, and writing JSON.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

namespace nucleus::bench {

using json = nlohmann::ordered_json;  // keeps the documented key order

struct Environment {
  std::string date;  // UTC, ISO 8601
  std::string kernel;
  int cpus = 0;
  double load1 = 0;  // 1-minute load average at the start
  json to_json() const;
  std::string describe() const;  // "2026-12-02T02:43:00Z, kernel 6.1, 2 CPUs, load 0.52"
};
Environment describe_environment();

// One \r-updated line on a terminal. Elsewhere (CI logs) a line is printed
// only when its first word changes or 10 s have passed, so logs stay short.
class Progress {
public:
  void update(const std::string& line);
  void finish();  // ends the line (terminal only)

private:
  bool interactive_ = false;
  bool initialised_ = false;
  std::size_t last_width_ = 0;
  std::string last_key_;
  std::chrono::steady_clock::time_point last_print_{};
};

// Writes `document` to `path`; false (with a message on stderr) on error.
bool write_json(const std::string& path, const json& document);

std::string format_fixed(double value, int decimals);

}  // namespace nucleus::bench
