#include "daemon_harness.hpp"

#include <cstdio>
#include <dirent.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "io/http_client.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/mountinfo.hpp"

namespace fs = std::filesystem;

namespace nucleus::bench {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The id in "sandbox-<32 hex digits>" at `text[at]`, or "".
std::string sandbox_id_at(const std::string& text, std::size_t at) {
  static constexpr std::string_view prefix = "sandbox-";
  if (text.compare(at, prefix.size(), prefix) != 0) return "";
  const std::size_t start = at + prefix.size();
  if (start + 32 > text.size()) return "";
  for (std::size_t i = start; i < start + 32; ++i)
    if (!std::isxdigit(static_cast<unsigned char>(text[i]))) return "";
  return text.substr(start, 32);
}

bool is_number(const char* name) {
  if (!*name) return false;
  for (; *name; ++name)
    if (!std::isdigit(static_cast<unsigned char>(*name))) return false;
  return true;
}

long long count_entries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  long long n = 0;
  while (const dirent* entry = ::readdir(d))
    if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) ++n;
  ::closedir(d);
  return n;
}

long long first_number_after(const std::string& text, std::size_t at) {
  while (at < text.size() && !std::isdigit(static_cast<unsigned char>(text[at]))) {
    if (text[at] == '\n') return -1;
    ++at;
  }
  if (at >= text.size()) return -1;
  return std::strtoll(text.c_str() + at, nullptr, 10);
}

long long field_value(const std::string& text, const std::string& field) {
  const std::string key = field + ":";
  for (std::size_t at = 0; at < text.size();) {
    if (text.compare(at, key.size(), key) == 0) return first_number_after(text, at + key.size());
    at = text.find('\n', at);
    if (at == std::string::npos) break;
    ++at;
  }
  return -1;
}

}  // namespace

json closure_spec(const std::string& manifest, const std::string& program, const std::vector<std::string>& args) {
  std::ifstream in(manifest);
  const json doc = json::parse(in, nullptr, false);
  std::string root =
      doc.is_object() && doc.contains("roots") && !doc["roots"].empty() ? doc["roots"][0].get<std::string>() : "";
  std::vector<std::string> command = {root + "/bin/" + program};
  command.insert(command.end(), args.begin(), args.end());
  return {{"command", command}, {"network", "host"}, {"rootfs_closure", manifest}};
}

json sandbox_spec(const fs::path& rootfs, const std::vector<std::string>& command) {
  return {{"command", command}, {"network", "host"}, {"rootfs", rootfs.string()}};
}

std::string ApiResult::describe() const {
  if (status == 0) return error;
  return "HTTP " + std::to_string(status) + (error.empty() ? "" : ": " + error);
}

BenchDaemon::BenchDaemon(const std::string& nucleus_binary, const fs::path& scratch, const fs::path& state_dir,
                         const std::vector<std::string>& prefix)
    : socket_((scratch / "nucleus.sock").string()), log_path_((scratch / "daemon.log").string()) {
  const fs::path state = state_dir.empty() ? scratch / "state" : state_dir;
  std::vector<std::string> argv = prefix;
  argv.insert(argv.end(), {nucleus_binary, "daemon", "--socket", socket_, "--state-dir", state.string()});
  server_ = std::make_unique<Server>(argv, std::nullopt, log_path_);
  const double deadline = monotonic_ms() + 15000;
  std::string last_error;
  while (true) {
    if (!server_->running()) {
      const std::string how = server_->exit_description();
      stopped_ = true;
      throw std::runtime_error("nucleus daemon exited during start-up (" + how + "): " + one_line(log_tail()));
    }
    if (::access(socket_.c_str(), F_OK) == 0) {
      const ApiResult health = call("GET", "/v1/health");
      if (health.ok(200)) return;
      last_error = health.describe();
    }
    if (monotonic_ms() > deadline || g_interrupted) {
      stop();
      throw std::runtime_error(g_interrupted ? "interrupted while the daemon started"
                                             : "nucleus daemon did not answer /v1/health within 15 s" +
                                                   (last_error.empty() ? "" : " (" + last_error + ")") + ": " +
                                                   one_line(log_tail()));
    }
    ::usleep(10000);
  }
}

BenchDaemon::~BenchDaemon() {
  try {
    stop();
  } catch (...) {
    // a destructor must not throw; the daemon is killed by Server's destructor
  }
}

ApiResult BenchDaemon::call(const std::string& method, const std::string& target, const std::string& body) const {
  ApiResult result;
  auto response = io::http::request(socket_, method, target, body);
  if (!response) {
    result.error = response.error().describe();
    return result;
  }
  result.status = response->status;
  if (!response->body.empty()) {
    result.body = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
    if (result.body.is_discarded()) result.body = nullptr;
  }
  if (result.status >= 300) {
    result.error = result.body.is_object() && result.body.contains("error") && result.body["error"].is_string()
                       ? result.body["error"].get<std::string>()
                       : one_line(response->body, 200);
  }
  return result;
}

std::vector<std::string> BenchDaemon::list_ids() const {
  std::vector<std::string> ids;
  const ApiResult list = call("GET", "/v1/sandboxes?all=true");
  if (!list.ok(200) || !list.body.is_object() || !list.body.contains("sandboxes") ||
      !list.body.at("sandboxes").is_array())
    return ids;
  for (const auto& sandbox : list.body.at("sandboxes"))
    if (sandbox.is_object() && sandbox.contains("id") && sandbox.at("id").is_string())
      ids.push_back(sandbox.at("id").get<std::string>());
  return ids;
}

std::size_t BenchDaemon::remove_all() const {
  std::size_t failed = 0;
  for (const auto& id : list_ids()) {
    const ApiResult removed = call("DELETE", "/v1/sandboxes/" + id + "?force=true");
    if (!removed.ok(204) && removed.status != 404) ++failed;
  }
  return failed;
}

bool BenchDaemon::stop() {
  if (stopped_ || !server_) return true;
  stopped_ = true;
  if (server_->running()) {
    const std::size_t failed = remove_all();
    if (failed > 0)
      std::cerr << "nucleus-bench: warning: " << failed
                << " sandboxes could not be removed before the daemon stopped\n";
  }
  return server_->stop(10, SIGTERM);
}

std::string BenchDaemon::log_tail() const {
  const std::string text = read_text(log_path_);
  return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

std::optional<std::string> cgroup2_mount() { return isolation::find_cgroup2_mount(read_text("/proc/self/mountinfo")); }

long long proc_status_value(pid_t pid, const std::string& field) {
  return field_value(read_text("/proc/" + std::to_string(pid) + "/status"), field);
}

long long proc_status_value_all_threads(pid_t pid, const std::string& field) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  long long sum = 0;
  while (const dirent* entry = ::readdir(d)) {
    if (!is_number(entry->d_name)) continue;
    const long long value = field_value(read_text(dir + "/" + entry->d_name + "/status"), field);
    if (value > 0) sum += value;
  }
  ::closedir(d);
  return sum;
}

std::pair<double, double> proc_cpu_seconds(pid_t pid) {
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return {-1, -1};
  std::istringstream fields(stat.substr(close + 2));
  std::vector<double> ticks;  // fields 3.. of proc(5)
  for (std::string field; fields >> field && ticks.size() < 15;) ticks.push_back(std::strtod(field.c_str(), nullptr));
  if (ticks.size() < 15) return {-1, -1};
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  // utime, stime, cutime, cstime are fields 14..17, at 11..14 here.
  return {(ticks[11] + ticks[12]) / hz, (ticks[13] + ticks[14]) / hz};
}

long long count_fds(pid_t pid) { return count_entries("/proc/" + std::to_string(pid) + "/fd"); }

long long mem_available_kib() {
  // The median of five readings 50 ms apart damps the host's own churn.
  std::vector<long long> readings;
  for (int i = 0; i < 5; ++i) {
    if (i) ::usleep(50000);
    readings.push_back(field_value(read_text("/proc/meminfo"), "MemAvailable"));
  }
  std::sort(readings.begin(), readings.end());
  return readings[2];
}

std::pair<long long, long long> sandbox_pss_kib(const HostCounts& counts, const std::set<std::string>& ids) {
  long long total = 0, processes = 0;
  for (const auto& entry : counts.processes) {
    const auto colon = entry.find(':');
    if (!ids.count(entry.substr(colon + 1))) continue;
    const long long pss = field_value(read_text("/proc/" + entry.substr(0, colon) + "/smaps_rollup"), "Pss");
    if (pss < 0) continue;
    total += pss;
    ++processes;
  }
  return {total, processes};
}

long long cgroup_memory_current(const std::string& cgroup_path) {
  const std::string text = read_text(cgroup_path + "/memory.current");
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return -1;
  return std::strtoll(text.c_str(), nullptr, 10);
}

HostCounts count_host(pid_t daemon_pid, const std::optional<std::string>& cgroup2) {
  HostCounts counts;
  counts.daemon_fds = count_fds(daemon_pid);
  const std::string mountinfo = read_text("/proc/self/mountinfo");
  counts.mounts = static_cast<long long>(isolation::parse_mountinfo(mountinfo).size());
  if (cgroup2) {
    if (DIR* d = ::opendir((*cgroup2 + "/nucleus").c_str())) {
      while (const dirent* entry = ::readdir(d)) {
        const std::string id = sandbox_id_at(entry->d_name, 0);
        if (!id.empty() && std::strlen(entry->d_name) == 8 + 32) counts.cgroups.insert(id);
      }
      ::closedir(d);
    }
  }
  if (DIR* d = ::opendir("/proc")) {
    while (const dirent* entry = ::readdir(d)) {
      if (!is_number(entry->d_name)) continue;
      const std::string text = read_text(std::string("/proc/") + entry->d_name + "/cgroup");
      const auto at = text.find("/nucleus/sandbox-");
      if (at == std::string::npos) continue;
      const std::string id = sandbox_id_at(text, at + 9);
      counts.processes.insert(std::string(entry->d_name) + ":" + id);
    }
    ::closedir(d);
  }
  return counts;
}

json Leaks::to_json() const {
  return {{"fds", fds}, {"cgroups", cgroups}, {"mounts", mounts}, {"processes", processes}};
}

std::string Leaks::describe() const {
  return "fds " + std::to_string(fds) + ", cgroups " + std::to_string(cgroups) + ", mounts " + std::to_string(mounts) +
         ", processes " + std::to_string(processes);
}

Leaks compare_counts(const HostCounts& before, const HostCounts& after, const std::set<std::string>& ours) {
  Leaks leaks;
  leaks.fds = std::max(0LL, after.daemon_fds - before.daemon_fds);
  leaks.mounts = std::max(0LL, after.mounts - before.mounts);
  for (const auto& id : after.cgroups) leaks.cgroups += ours.count(id) > 0;
  for (const auto& entry : after.processes) leaks.processes += ours.count(entry.substr(entry.find(':') + 1)) > 0;
  return leaks;
}

Leaks measure_leaks(pid_t daemon_pid, const std::optional<std::string>& cgroup2, const HostCounts& before,
                    const std::set<std::string>& ours, HostCounts& after, double settle_s) {
  const double deadline = monotonic_ms() + settle_s * 1000;
  while (true) {
    after = count_host(daemon_pid, cgroup2);
    const Leaks leaks = compare_counts(before, after, ours);
    if (!leaks.any() || monotonic_ms() > deadline || g_interrupted) return leaks;
    ::usleep(100000);
  }
}

unsigned long long raise_nofile_limit(unsigned long long wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted) {
    unsigned long long ceiling = wanted;
    const std::string nr_open = read_text("/proc/sys/fs/nr_open");
    if (!nr_open.empty()) ceiling = std::min(ceiling, std::strtoull(nr_open.c_str(), nullptr, 10));
    rlimit raised{ceiling, ceiling};
    if (ceiling > limit.rlim_max && ::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

std::string filesystem_name(const fs::path& path) {
  struct statfs info {};
  if (::statfs(path.c_str(), &info) != 0) return "unknown";
  switch (static_cast<unsigned long>(info.f_type)) {
    case EXT4_SUPER_MAGIC:
      return "ext2/3/4";
    case TMPFS_MAGIC:
      return "tmpfs";
    case XFS_SUPER_MAGIC:
      return "xfs";
    case BTRFS_SUPER_MAGIC:
      return "btrfs";
    case OVERLAYFS_SUPER_MAGIC:
      return "overlay";
  }
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%lx", static_cast<unsigned long>(info.f_type));
  return hex;
}

double monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

unsigned parallel_for(unsigned count, unsigned threads, const std::function<void(unsigned)>& work,
                      const std::function<void(unsigned)>& tick) {
  std::atomic<unsigned> next{0}, finished{0}, running{0};
  threads = std::max(1u, std::min(threads, count));
  std::vector<std::thread> pool;
  running = threads;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (unsigned i; !g_interrupted && (i = next.fetch_add(1)) < count;) {
        work(i);
        finished.fetch_add(1);
      }
      running.fetch_sub(1);
    });
  }
  double last_tick = 0;
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (monotonic_ms() - last_tick >= 250) {
      tick(finished.load());
      last_tick = monotonic_ms();
    }
  }
  for (auto& thread : pool) thread.join();
  tick(finished.load());
  return finished.load();
}

}  // namespace nucleus::bench
