#include "spawn.hpp"

#include <algorithm>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <CLI/CLI.hpp>

#include "daemon_harness.hpp"
#include "process.hpp"
#include "report.hpp"
#include "rootfs.hpp"
#include "stats.hpp"

#ifndef NUCLEUS_DEFAULT_BINARY
#define NUCLEUS_DEFAULT_BINARY "nucleus"
#endif

namespace fs = std::filesystem;

namespace nucleus::bench {
namespace {

// One sandbox's round trip. `latency_ms` runs from spawn_one's `start`
// (when the create request is sent, or in --rate mode when it was due to be
// sent, so that a request held back by busy clients counts its wait) to the
// wait request's answer (the sandbox has exited by then).
struct Spawned {
  bool ok = false;
  double latency_ms = 0;
  std::string id;
  std::string failure;
};

Spawned spawn_one(const BenchDaemon& daemon, const std::string& spec, double start) {
  Spawned result;
  const ApiResult created = daemon.call("POST", "/v1/sandboxes", spec);
  if (!created.ok(201) || !created.body.is_object() || !created.body.contains("id") ||
      !created.body.at("id").is_string()) {
    result.failure = "create: " + created.describe();
    return result;
  }
  result.id = created.body.at("id").get<std::string>();
  const ApiResult waited = daemon.call("POST", "/v1/sandboxes/" + result.id + "/wait?timeout=60");
  result.latency_ms = monotonic_ms() - start;
  if (!waited.ok(200)) {
    result.failure = "wait: " + waited.describe();
  } else if (!waited.body.is_object() || !waited.body.contains("exit_code") || waited.body.at("exit_code") != 0) {
    result.failure = "/bin/true did not exit 0: " + waited.body.dump();
  }
  const bool exited = waited.ok(200);
  const ApiResult removed = daemon.call("DELETE", "/v1/sandboxes/" + result.id + (exited ? "" : "?force=true"));
  if (!removed.ok(204) && result.failure.empty()) result.failure = "delete: " + removed.describe();
  result.ok = result.failure.empty();
  return result;
}

void print_markdown(const json& report) {
  auto ms = [&](const char* key) {
    return report[key].is_null() ? std::string("-") : format_fixed(report[key].get<double>(), 2);
  };
  const json& leaked = report["leaked"];
  const std::string pacing =
      report["rate"].is_null()
          ? report["concurrency"].dump() + " client threads, each create -> wait -> delete back to back"
          : "requests due at " + format_fixed(report["rate"].get<double>(), 0) + "/s (open loop, up to " +
                report["concurrency"].dump() +
                " outstanding; latency counted from when each was due), each create -> wait -> delete";
  std::cout << "## nucleus-bench spawn\n\n"
            << "`/bin/true` sandboxes (`\"network\": \"" << report["network"].get<std::string>()
            << "\"`, busybox rootfs) through the daemon API: " << pacing << "; daemon state on "
            << report["state_filesystem"].get<std::string>() << "; " << report["warmup"] << " warm-up; "
            << report["date"].get<std::string>() << ", kernel " << report["kernel"].get<std::string>() << ", "
            << report["cpus"] << " CPUs, load average " << format_fixed(report["load1"].get<double>(), 2) << "\n\n"
            << "| metric | value |\n|---|---:|\n"
            << "| sandboxes spawned | " << report["spawned"] << " of " << report["count"] << " |\n"
            << "| failed | " << report["failed"] << " |\n"
            << "| wall time | " << format_fixed(report["wall_s"].get<double>(), 2) << " s |\n"
            << "| spawns/s | " << format_fixed(report["spawns_per_sec"].get<double>(), 1) << " |\n"
            << "| request-to-exit p50 | " << ms("p50_ms") << " ms |\n"
            << "| request-to-exit p90 | " << ms("p90_ms") << " ms |\n"
            << "| request-to-exit p99 | " << ms("p99_ms") << " ms |\n"
            << "| request-to-exit max | " << ms("max_ms") << " ms |\n"
            << "| daemon CPU / reaped children's CPU | " << format_fixed(report["daemon_cpu_s"].get<double>(), 2)
            << " s / " << format_fixed(report["children_cpu_s"].get<double>(), 2) << " s |\n"
            << "| daemon RSS at the end | " << report["daemon_rss_kib"] << " KiB |\n"
            << "| daemon fds after warm-up / at the end | " << report["daemon_fds_before"] << " / "
            << report["daemon_fds_after"] << " |\n"
            << "| leaked fds / cgroups / mounts / processes | " << leaked["fds"] << " / " << leaked["cgroups"] << " / "
            << leaked["mounts"] << " / " << leaked["processes"] << " |\n";
  if (!report["first_failure"].is_null())
    std::cout << "\nfirst failure: " << report["first_failure"].get<std::string>() << '\n';
}

}  // namespace

CLI::App* add_spawn_command(CLI::App& app, SpawnOptions& options) {
  auto* command = app.add_subcommand(
      "spawn", "Sandbox churn through the daemon API: C threads each create -> wait -> delete /bin/true sandboxes");
  auto quick = std::make_shared<bool>(false);
  options.nucleus_binary = NUCLEUS_DEFAULT_BINARY;
  auto* count = command->add_option("--count", options.count, "Sandboxes to spawn (measured)")
                    ->capture_default_str()
                    ->check(CLI::Range(1u, 10000000u));
  auto* concurrency = command->add_option("--concurrency", options.concurrency, "Client threads")
                          ->capture_default_str()
                          ->check(CLI::Range(1u, 1024u));
  command
      ->add_option("--rate", options.rate,
                   "Open loop: start a sandbox every 1/R s whether or not earlier ones finished "
                   "(up to --concurrency outstanding, default 32 then), and count latency from when each was due")
      ->check(CLI::Range(0.1, 100000.0));
  command->add_option("--warmup", options.warmup, "Unmeasured spawns first (default: 2 per client thread, at most 8)");
  command->add_option("--nucleus", options.nucleus_binary, "The nucleus binary")->capture_default_str();
  command->add_option("--json", options.json_path, "Also write the results (with every sample) as JSON here");
  command->add_option("--rootfs", options.rootfs_dir, "Build/reuse the busybox rootfs here and keep it");
  command
      ->add_option("--state-dir", options.state_parent,
                   "Give the daemon a fresh --state-dir (records and logs) under DIR, removed afterwards, e.g. on the "
                   "tmpfs that "
                   "/run is on systemd hosts; default: beside its socket under /var/tmp")
      ->check(CLI::ExistingDirectory);
  command
      ->add_option("--network", options.network,
                   "The sandboxes' network: host (default), none (a namespace of its own), egress (one --allow-domain "
                   "rule) or bridge (a veth on a bridge; the daemon then runs in a network namespace of the "
                   "benchmark's own, so that its bridge, nftables and sysctls never touch the machine's)")
      ->check(CLI::IsMember({"host", "none", "egress", "bridge"}))
      ->capture_default_str();
  command->add_flag("--quick", *quick, "Smoke run: 50 sandboxes (unless --count is given)");
  command->callback([&options, quick, count, concurrency] {
    if (*quick && count->count() == 0) options.count = 50;
    if (options.rate > 0 && concurrency->count() == 0) options.concurrency = 32;
    if (options.warmup == 0) options.warmup = 2 * std::min(options.concurrency, 4u);
  });
  return command;
}

int run_spawn(const SpawnOptions& options) {
  install_interrupt_handlers();
  const Environment env = describe_environment();
  raise_nofile_limit(4096 + 16ULL * options.concurrency);
  const ScratchDir scratch;
  const fs::path rootfs = options.rootfs_dir.empty() ? scratch.path() / "rootfs" : fs::absolute(options.rootfs_dir);
  build_busybox_rootfs(rootfs);
  const std::string nucleus = find_executable(options.nucleus_binary).value_or(options.nucleus_binary);
  const auto cgroup2 = cgroup2_mount();
  json document = sandbox_spec(rootfs, {"/bin/true"});
  document["network"] = options.network;
  if (options.network == "egress") document["allow_domain"] = {"pypi.org"};
  const std::string spec = document.dump();

  Progress progress;
  progress.update("starting nucleus daemon ...");
  std::optional<ScratchDir> state_scratch;
  if (!options.state_parent.empty()) state_scratch.emplace("nucleus-bench-state", options.state_parent);
  const fs::path state_dir = state_scratch ? state_scratch->path() : fs::path();
  const std::string state_fs = filesystem_name(state_dir.empty() ? scratch.path() : state_dir);
  std::vector<std::string> prefix;
  if (options.network == "bridge")
    prefix = {"/usr/bin/env", "NUCLEUS_STATE_DIR=" + (scratch.path() / "runtime").string(), "/usr/bin/unshare",
              "--net"};
  BenchDaemon daemon(nucleus, scratch.path(), state_dir, prefix);

  std::set<std::string> ours;
  std::mutex ours_mutex;
  // rate > 0: request i is due at start + i/rate; a client thread sleeps
  // until then. Without a rate each thread sends its next request at once.
  auto run_batch = [&](unsigned count, const std::string& label, std::vector<Spawned>& results, double rate) {
    results.assign(count, Spawned{});
    const double start = monotonic_ms();
    const unsigned finished = parallel_for(
        count, options.concurrency,
        [&](unsigned i) {
          double due = monotonic_ms();
          if (rate > 0) {
            due = start + 1000.0 * i / rate;
            const double wait_ms = due - monotonic_ms();
            if (wait_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(wait_ms));
          }
          results[i] = spawn_one(daemon, spec, due);
          if (!results[i].id.empty()) {
            const std::lock_guard lock(ours_mutex);
            ours.insert(results[i].id);
          }
        },
        [&](unsigned done) {
          const double seconds = (monotonic_ms() - start) / 1000;
          progress.update(label + " " + std::to_string(done) + "/" + std::to_string(count) +
                          (seconds > 0 ? " (" + format_fixed(done / seconds, 0) + "/s)" : ""));
        });
    results.resize(finished);
    return (monotonic_ms() - start) / 1000;
  };

  std::vector<Spawned> warmup_results;
  run_batch(options.warmup, "warm-up", warmup_results, 0);
  for (const auto& result : warmup_results) {
    if (!result.ok) {
      progress.finish();
      std::cerr << "nucleus-bench: warning: a warm-up spawn failed: " << result.failure << '\n';
      break;
    }
  }
  const HostCounts before = count_host(daemon.pid(), cgroup2);

  std::vector<Spawned> results;
  const auto cpu_before = proc_cpu_seconds(daemon.pid());
  const double wall_s = run_batch(options.count, "spawn", results, options.rate);
  const auto cpu_after = proc_cpu_seconds(daemon.pid());
  progress.update("checking for leaks ...");
  const long long rss_kib = proc_status_value(daemon.pid(), "VmRSS");
  for (const auto& id : daemon.list_ids()) ours.insert(id);  // failed creates the daemon still lists
  HostCounts after;
  const Leaks leaks = measure_leaks(daemon.pid(), cgroup2, before, ours, after);
  progress.finish();
  const bool clean_stop = daemon.stop();
  if (!clean_stop) std::cerr << "nucleus-bench: warning: the daemon did not exit within 10 s of SIGTERM\n";
  if (g_interrupted) {
    std::cerr << "nucleus-bench: interrupted after " << results.size() << " spawns\n";
    return 130;
  }

  std::vector<double> samples;
  unsigned failed = 0;
  std::string first_failure;
  for (const auto& result : results) {
    if (result.ok) {
      samples.push_back(result.latency_ms);
    } else if (failed++ == 0) {
      first_failure = result.failure;
    }
  }
  json report = {{"benchmark", "spawn"}};
  report.update(env.to_json());
  report.update(json{{"count", options.count},
                     {"concurrency", options.concurrency},
                     {"rate", options.rate > 0 ? json(options.rate) : json(nullptr)},
                     {"network", options.network},
                     {"state_filesystem", state_fs},
                     {"warmup", options.warmup},
                     {"rootfs", rootfs.string()},
                     {"spec", json::parse(spec)},
                     {"spawned", samples.size()},
                     {"failed", failed},
                     {"first_failure", failed ? json(first_failure) : json(nullptr)},
                     {"wall_s", wall_s},
                     {"spawns_per_sec", wall_s > 0 ? static_cast<double>(samples.size()) / wall_s : 0.0},
                     {"p50_ms", nullptr},
                     {"p90_ms", nullptr},
                     {"p99_ms", nullptr},
                     {"max_ms", nullptr},
                     {"daemon_rss_kib", rss_kib},
                     {"daemon_cpu_s", cpu_after.first - cpu_before.first},
                     {"children_cpu_s", cpu_after.second - cpu_before.second},
                     {"daemon_fds_before", before.daemon_fds},
                     {"daemon_fds_after", after.daemon_fds},
                     {"mounts_before", before.mounts},
                     {"mounts_after", after.mounts},
                     {"leaked", leaks.to_json()},
                     {"daemon_stopped_cleanly", clean_stop},
                     {"samples_ms", samples}});
  if (!samples.empty()) {
    report["p50_ms"] = percentile(samples, 0.50);
    report["p90_ms"] = percentile(samples, 0.90);
    report["p99_ms"] = percentile(samples, 0.99);
    report["max_ms"] = *std::max_element(samples.begin(), samples.end());
  }
  print_markdown(report);
  int status = (failed == 0 && !leaks.any()) ? 0 : 1;
  if (!options.json_path.empty() && !write_json(options.json_path, report)) status = 1;
  return status;
}

}  // namespace nucleus::bench
