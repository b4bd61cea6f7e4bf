#include "density.hpp"

#include <unistd.h>

#include <iostream>
#include <memory>
#include <set>

#include <CLI/CLI.hpp>

#include "daemon_harness.hpp"
#include "process.hpp"
#include "report.hpp"
#include "rootfs.hpp"

#ifndef NUCLEUS_DEFAULT_BINARY
#define NUCLEUS_DEFAULT_BINARY "nucleus"
#endif

namespace fs = std::filesystem;

namespace nucleus::bench {
namespace {

constexpr const char* kNoMemoryController = "n/a (no memory controller in this cgroup2 hierarchy)";

struct Held {
  std::string id;
  std::string cgroup;
  std::string failure;
};

// Sleeps `seconds` unless interrupted first.
void idle(double seconds) {
  const double deadline = monotonic_ms() + seconds * 1000;
  while (!g_interrupted && monotonic_ms() < deadline) ::usleep(20000);
}

std::string kib(const json& value) {
  return value.is_null() ? std::string("-") : std::to_string(value.get<long long>()) + " KiB";
}

void print_markdown(const json& report) {
  const json& leaked = report["leaked"];
  const json& idle = report["daemon_idle"];
  std::cout << "## nucleus-bench density\n\n"
            << report["count"]
            << " `sleep 3600` sandboxes (`\"network\": \"host\"`, busybox rootfs) held at once by one "
            << "daemon, created and removed by " << report["concurrency"] << " client threads; "
            << report["date"].get<std::string>() << ", kernel " << report["kernel"].get<std::string>() << ", "
            << report["cpus"] << " CPUs, load average " << format_fixed(report["load1"].get<double>(), 2) << "\n\n"
            << "| metric | value |\n|---|---:|\n"
            << "| sandboxes running at once | " << report["running"] << " of " << report["count"] << " |\n"
            << "| create failures | " << report["create_failed"] << " |\n"
            << "| time to create them all | " << format_fixed(report["create_s"].get<double>(), 2) << " s |\n"
            << "| host memory per sandbox (MemAvailable drop) | " << kib(report["host_kib_per_sandbox"]) << " |\n"
            << "| sandbox processes' Pss per sandbox (" << report["sandbox_processes"] << " processes) | "
            << kib(report["pss_kib_per_sandbox"]) << " |\n"
            << "| cgroup memory per sandbox (memory.current) | "
            << (report["cgroup_kib_per_sandbox"].is_null() ? report["cgroup_memory_note"].get<std::string>()
                                                           : kib(report["cgroup_kib_per_sandbox"]))
            << " |\n"
            << "| daemon RSS before / with all live | " << kib(report["daemon_rss_kib_before"]) << " / "
            << kib(report["daemon_rss_kib"]) << " |\n"
            << "| daemon fds with all live | " << report["daemon_fds_live"] << " |\n"
            << "| daemon context switches in " << format_fixed(idle["seconds"].get<double>(), 0)
            << " s idle: voluntary (main thread) / all threads, voluntary + involuntary | "
            << idle["voluntary_ctxt_switches"] << " / " << idle["all_threads_ctxt_switches"] << " |\n"
            << "| teardown (DELETE ?force=true of all) | " << format_fixed(report["teardown_s"].get<double>(), 2)
            << " s |\n"
            << "| teardown failures | " << report["teardown_failed"] << " |\n"
            << "| leaked fds / cgroups / mounts / processes | " << leaked["fds"] << " / " << leaked["cgroups"] << " / "
            << leaked["mounts"] << " / " << leaked["processes"] << " |\n";
  if (!report["first_failure"].is_null())
    std::cout << "\nfirst failure: " << report["first_failure"].get<std::string>() << '\n';
}

long long all_thread_switches(pid_t pid) {
  return proc_status_value_all_threads(pid, "voluntary_ctxt_switches") +
         proc_status_value_all_threads(pid, "nonvoluntary_ctxt_switches");
}

}  // namespace

CLI::App* add_density_command(CLI::App& app, DensityOptions& options) {
  auto* command = app.add_subcommand(
      "density", "N sleeping sandboxes held at once: memory per sandbox, daemon RSS and idle wake-ups, teardown time");
  auto quick = std::make_shared<bool>(false);
  options.nucleus_binary = NUCLEUS_DEFAULT_BINARY;
  auto* count = command->add_option("--count", options.count, "Sandboxes held at once")
                    ->capture_default_str()
                    ->check(CLI::Range(1u, 100000u));
  command->add_option("--concurrency", options.concurrency, "Client threads creating and removing them")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
  command->add_option("--idle", options.idle_s, "Seconds of idleness over which the daemon's wake-ups are counted")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  command->add_option("--nucleus", options.nucleus_binary, "The nucleus binary")->capture_default_str();
  command->add_option("--json", options.json_path, "Also write the results as JSON here");
  command->add_option("--rootfs", options.rootfs_dir, "Build/reuse the busybox rootfs here and keep it");
  command->add_option("--closure", options.closure_manifest,
                      "Run the sandboxes on this closure manifest (bin/sleep of its first root)");
  command->add_flag("--quick", *quick, "Smoke run: 20 sandboxes (unless --count is given)");
  command->callback([&options, quick, count] {
    if (*quick && count->count() == 0) options.count = 20;
  });
  return command;
}

int run_density(const DensityOptions& options) {
  install_interrupt_handlers();
  const Environment env = describe_environment();
  // The daemon keeps a pidfd, output pipes, log files and a cgroup fd per sandbox.
  raise_nofile_limit(4096 + 16ULL * options.count);
  const ScratchDir scratch;
  const fs::path rootfs = options.rootfs_dir.empty() ? scratch.path() / "rootfs" : fs::absolute(options.rootfs_dir);
  build_busybox_rootfs(rootfs);
  const std::string nucleus = find_executable(options.nucleus_binary).value_or(options.nucleus_binary);
  const auto cgroup2 = cgroup2_mount();

  Progress progress;
  progress.update("starting nucleus daemon ...");
  BenchDaemon daemon(nucleus, scratch.path());
  std::set<std::string> ours;

  // Warm-up: one sandbox through its whole life, so that what the daemon
  // allocates once is not charged to the sandboxes.
  progress.update("warm-up ...");
  {
    const ApiResult created =
        daemon.call("POST", "/v1/sandboxes",
                    options.closure_manifest.empty() ? sandbox_spec(rootfs, {"/bin/true"}).dump()
                                                     : closure_spec(options.closure_manifest, "true", {}).dump());
    if (created.ok(201) && created.body.contains("id")) {
      const std::string id = created.body.at("id").get<std::string>();
      ours.insert(id);
      (void)daemon.call("POST", "/v1/sandboxes/" + id + "/wait?timeout=60");
      (void)daemon.call("DELETE", "/v1/sandboxes/" + id + "?force=true");
    } else {
      progress.finish();
      std::cerr << "nucleus-bench: warning: the warm-up sandbox failed: " << created.describe() << '\n';
    }
  }
  const HostCounts before = count_host(daemon.pid(), cgroup2);
  const long long rss_before = proc_status_value(daemon.pid(), "VmRSS");
  const long long available_before = mem_available_kib();

  // Create all of them.
  const std::string spec = options.closure_manifest.empty()
                               ? sandbox_spec(rootfs, {"/bin/sleep", "3600"}).dump()
                               : closure_spec(options.closure_manifest, "sleep", {"3600"}).dump();
  std::vector<Held> held(options.count);
  double start = monotonic_ms();
  const unsigned created_count = parallel_for(
      options.count, options.concurrency,
      [&](unsigned i) {
        const ApiResult created = daemon.call("POST", "/v1/sandboxes", spec);
        if (!created.ok(201) || !created.body.is_object() || !created.body.contains("id")) {
          held[i].failure = "create: " + created.describe();
          return;
        }
        held[i].id = created.body.at("id").get<std::string>();
        const auto cgroup = created.body.find("cgroup");
        if (cgroup != created.body.end() && cgroup->is_string()) held[i].cgroup = cgroup->get<std::string>();
        else if (cgroup2) held[i].cgroup = *cgroup2 + "/nucleus/sandbox-" + held[i].id;
      },
      [&](unsigned done) { progress.update("create " + std::to_string(done) + "/" + std::to_string(options.count)); });
  const double create_s = (monotonic_ms() - start) / 1000;
  held.resize(created_count);
  unsigned create_failed = 0;
  std::string first_failure;
  for (const auto& entry : held) {
    if (!entry.id.empty()) ours.insert(entry.id);
    if (!entry.failure.empty() && create_failed++ == 0) first_failure = entry.failure;
  }

  // With all of them live.
  long long running = -1;
  if (const ApiResult health = daemon.call("GET", "/v1/health"); health.ok(200) && health.body.is_object())
    running = health.body.value("running", -1LL);
  progress.update("settling ...");
  idle(1);
  const long long available_live = mem_available_kib();
  const long long rss_live = proc_status_value(daemon.pid(), "VmRSS");
  const long long fds_live = count_fds(daemon.pid());
  std::set<std::string> live_ids;
  for (const auto& entry : held)
    if (!entry.id.empty()) live_ids.insert(entry.id);
  const auto [pss_kib, pss_processes] = sandbox_pss_kib(count_host(daemon.pid(), cgroup2), live_ids);
  long long cgroup_bytes = 0;
  unsigned with_memory = 0;
  for (const auto& entry : held) {
    if (entry.id.empty() || entry.cgroup.empty()) continue;
    const long long current = cgroup_memory_current(entry.cgroup);
    if (current >= 0) {
      cgroup_bytes += current;
      ++with_memory;
    }
  }

  progress.update("idle " + format_fixed(options.idle_s, 0) + " s ...");
  const long long voluntary_before = proc_status_value(daemon.pid(), "voluntary_ctxt_switches");
  const long long all_before = all_thread_switches(daemon.pid());
  idle(options.idle_s);
  const long long voluntary_after = proc_status_value(daemon.pid(), "voluntary_ctxt_switches");
  const long long all_after = all_thread_switches(daemon.pid());

  // Tear them all down.
  std::vector<std::string> teardown_failures(held.size());
  start = monotonic_ms();
  parallel_for(
      static_cast<unsigned>(held.size()), options.concurrency,
      [&](unsigned i) {
        if (held[i].id.empty()) return;
        const ApiResult removed = daemon.call("DELETE", "/v1/sandboxes/" + held[i].id + "?force=true");
        if (!removed.ok(204)) teardown_failures[i] = "delete: " + removed.describe();
      },
      [&](unsigned done) { progress.update("teardown " + std::to_string(done) + "/" + std::to_string(held.size())); });
  const double teardown_s = (monotonic_ms() - start) / 1000;
  unsigned teardown_failed = 0;
  for (const auto& failure : teardown_failures) {
    if (failure.empty()) continue;
    if (teardown_failed++ == 0 && first_failure.empty()) first_failure = failure;
  }

  progress.update("checking for leaks ...");
  for (const auto& id : daemon.list_ids()) ours.insert(id);
  HostCounts after;
  const Leaks leaks = measure_leaks(daemon.pid(), cgroup2, before, ours, after);
  const long long rss_after = proc_status_value(daemon.pid(), "VmRSS");
  const long long available_after = mem_available_kib();
  progress.finish();
  const bool clean_stop = daemon.stop();
  if (!clean_stop) std::cerr << "nucleus-bench: warning: the daemon did not exit within 10 s of SIGTERM\n";
  if (g_interrupted) {
    std::cerr << "nucleus-bench: interrupted\n";
    return 130;
  }

  const unsigned live = created_count - create_failed;
  json report = {{"benchmark", "density"}};
  report.update(env.to_json());
  report.update(json{{"count", options.count},
                     {"concurrency", options.concurrency},
                     {"rootfs", rootfs.string()},
                     {"spec", json::parse(spec)},
                     {"created", live},
                     {"create_failed", create_failed},
                     {"running", running},
                     {"first_failure", first_failure.empty() ? json(nullptr) : json(first_failure)},
                     {"create_s", create_s},
                     {"mem_available_kib_before", available_before},
                     {"mem_available_kib_live", available_live},
                     {"mem_available_kib_after", available_after},
                     {"host_kib_per_sandbox",
                      live ? json((available_before - available_live) / static_cast<long long>(live)) : json(nullptr)},
                     {"sandbox_processes", pss_processes},
                     {"pss_kib_per_sandbox", live ? json(pss_kib / static_cast<long long>(live)) : json(nullptr)},
                     {"cgroup_kib_per_sandbox", with_memory ? json(cgroup_bytes / 1024 / with_memory) : json(nullptr)},
                     {"cgroup_memory_note", with_memory ? json(nullptr) : json(kNoMemoryController)},
                     {"daemon_rss_kib_before", rss_before},
                     {"daemon_rss_kib", rss_live},
                     {"daemon_rss_kib_after", rss_after},
                     {"daemon_fds_before", before.daemon_fds},
                     {"daemon_fds_live", fds_live},
                     {"daemon_fds_after", after.daemon_fds},
                     {"daemon_idle",
                      {{"seconds", options.idle_s},
                       {"voluntary_ctxt_switches", voluntary_after - voluntary_before},
                       {"all_threads_ctxt_switches", all_after - all_before}}},
                     {"teardown_s", teardown_s},
                     {"teardown_failed", teardown_failed},
                     {"mounts_before", before.mounts},
                     {"mounts_after", after.mounts},
                     {"leaked", leaks.to_json()},
                     {"daemon_stopped_cleanly", clean_stop}});
  print_markdown(report);
  int status =
      (create_failed == 0 && teardown_failed == 0 && running == static_cast<long long>(options.count) && !leaks.any())
          ? 0
          : 1;
  if (!options.json_path.empty() && !write_json(options.json_path, report)) status = 1;
  return status;
}

}  // namespace nucleus::bench
