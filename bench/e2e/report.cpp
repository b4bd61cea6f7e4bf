#include "report.hpp"

#include <sched.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>

namespace nucleus::bench {

json Environment::to_json() const { return {{"date", date}, {"kernel", kernel}, {"cpus", cpus}, {"load1", load1}}; }

std::string Environment::describe() const {
  return date + ", kernel " + kernel + ", " + std::to_string(cpus) + " CPUs, load average " + format_fixed(load1, 2);
}

Environment describe_environment() {
  Environment env;
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  env.date = date;
  utsname uts{};
  if (::uname(&uts) == 0) env.kernel = uts.release;
  cpu_set_t cpus;  // what nproc reports: CPUs this process may run on
  env.cpus = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 0;
  double load[1] = {0};
  if (::getloadavg(load, 1) == 1) env.load1 = load[0];
  return env;
}

void Progress::update(const std::string& line) {
  if (!initialised_) {
    interactive_ = ::isatty(STDERR_FILENO) == 1;
    initialised_ = true;
  }
  if (interactive_) {
    std::string padded = line;
    if (padded.size() < last_width_) padded.append(last_width_ - padded.size(), ' ');
    last_width_ = line.size();
    std::fprintf(stderr, "\r%s", padded.c_str());
    std::fflush(stderr);
    return;
  }
  const std::string key = line.substr(0, line.find(' '));
  const auto now = std::chrono::steady_clock::now();
  if (key != last_key_ || now - last_print_ > std::chrono::seconds(10)) {
    std::fprintf(stderr, "%s\n", line.c_str());
    last_key_ = key;
    last_print_ = now;
  }
}

void Progress::finish() {
  if (interactive_ && last_width_ > 0) {
    std::fprintf(stderr, "\r%s\r", std::string(last_width_, ' ').c_str());
    std::fflush(stderr);
  }
  last_width_ = 0;
}

bool write_json(const std::string& path, const json& document) {
  std::ofstream out(path, std::ios::trunc);
  out << document.dump(2) << '\n';
  if (!out.flush()) {
    std::cerr << "nucleus-bench: cannot write " << path << '\n';
    return false;
  }
  return true;
}

std::string format_fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

}  // namespace nucleus::bench
