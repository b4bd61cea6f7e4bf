#include "coldstart.hpp"

#include <algorithm>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <random>

#include <CLI/CLI.hpp>

#include "peers.hpp"
#include "plot.hpp"
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

constexpr const char* kBaselineName = "nucleus agent";

struct SubjectResult {
  explicit SubjectResult(Subject measured) : subject(std::move(measured)) {}
  Subject subject;
  std::vector<double> samples_ms;
  unsigned failures = 0;
  std::string first_failure;
};

struct NotRun {
  std::string name;
  std::string reason;
};

std::optional<double> baseline_median(const std::vector<SubjectResult>& results) {
  for (const auto& result : results)
    if (result.subject.name == kBaselineName && !result.samples_ms.empty())
      return summarize(result.samples_ms).median_ms;
  return std::nullopt;
}

json to_json(const Environment& env, const fs::path& rootfs, const ColdstartOptions& options, unsigned rounds_done,
             const std::vector<SubjectResult>& results, const std::vector<NotRun>& not_run) {
  const auto baseline = baseline_median(results);
  json subjects = json::array();
  for (const auto& result : results) {
    json entry = {{"name", result.subject.name},
                  {"kind", result.subject.kind},
                  {"version", result.subject.version},
                  {"command", result.subject.display_command()},
                  {"runs", result.samples_ms.size()},
                  {"median_ms", nullptr},
                  {"p90_ms", nullptr},
                  {"p99_ms", nullptr},
                  {"ratio_to_nucleus", nullptr},
                  {"failures", result.failures},
                  {"first_failure", result.failures ? json(result.first_failure) : json(nullptr)},
                  {"samples_ms", result.samples_ms}};
    if (!result.samples_ms.empty()) {
      const auto summary = summarize(result.samples_ms);
      entry["median_ms"] = summary.median_ms;
      entry["p90_ms"] = summary.p90_ms;
      entry["p99_ms"] = summary.p99_ms;
      if (baseline) entry["ratio_to_nucleus"] = summary.median_ms / *baseline;
    }
    subjects.push_back(std::move(entry));
  }
  json skipped = json::array();
  for (const auto& entry : not_run) skipped.push_back({{"name", entry.name}, {"reason", entry.reason}});
  json document = {{"benchmark", "coldstart"}};
  document.update(env.to_json());
  document.update(json{{"runs", rounds_done},
                       {"warmup", options.warmup},
                       {"baseline", kBaselineName},
                       {"rootfs", rootfs.string()},
                       {"subjects", subjects},
                       {"not_run", skipped}});
  return document;
}

void print_markdown(const json& report) {
  std::cout << "## nucleus-bench coldstart\n\n"
            << "`/bin/true` on a static busybox rootfs; " << report["runs"].get<unsigned>()
            << " interleaved rounds after " << report["warmup"].get<unsigned>() << " warm-up; "
            << report["date"].get<std::string>() << ", kernel " << report["kernel"].get<std::string>() << ", "
            << report["cpus"].get<int>() << " CPUs, load average " << format_fixed(report["load1"].get<double>(), 2)
            << "\n\n"
            << "| subject | version | runs | median ms | p90 ms | p99 ms | ratio to " << kBaselineName
            << " | failures |\n"
            << "|---|---|---:|---:|---:|---:|---:|---:|\n";
  auto number = [](const json& value, int decimals) {
    return value.is_null() ? std::string("-") : format_fixed(value.get<double>(), decimals);
  };
  for (const auto& subject : report["subjects"]) {
    std::cout << "| " << subject["name"].get<std::string>() << " | " << subject["version"].get<std::string>() << " | "
              << subject["runs"] << " | " << number(subject["median_ms"], 2) << " | " << number(subject["p90_ms"], 2)
              << " | " << number(subject["p99_ms"], 2) << " | "
              << (subject["ratio_to_nucleus"].is_null() ? "-" : number(subject["ratio_to_nucleus"], 2) + "x") << " | "
              << subject["failures"] << " |\n";
  }
  if (!report["not_run"].empty()) {
    std::cout << "\nNot run:\n\n| subject | reason |\n|---|---|\n";
    for (const auto& entry : report["not_run"]) {
      std::cout << "| " << entry["name"].get<std::string>() << " | " << entry["reason"].get<std::string>() << " |\n";
    }
  }
  for (const auto& subject : report["subjects"]) {
    if (!subject["first_failure"].is_null()) {
      std::cout << "\n"
                << subject["name"].get<std::string>()
                << " first failure: " << subject["first_failure"].get<std::string>() << '\n';
    }
  }
}

}  // namespace

CLI::App* add_coldstart_command(CLI::App& app, ColdstartOptions& options) {
  auto* command = app.add_subcommand(
      "coldstart", "Cold-start latency of `nucleus run -- /bin/true` against bare exec and peers, interleaved");
  struct Raw {
    std::string peers = "crun,runc,bwrap,runsc,docker,podman";
    bool quick = false;
  };
  auto raw = std::make_shared<Raw>();
  options.nucleus_binary = NUCLEUS_DEFAULT_BINARY;
  auto* runs = command->add_option("--runs", options.runs, "Measured rounds")
                   ->capture_default_str()
                   ->check(CLI::Range(1u, 1000000u));
  auto* warmup = command->add_option("--warmup", options.warmup, "Discarded warm-up rounds")->capture_default_str();
  command
      ->add_option("--peers", raw->peers,
                   "Comma-separated peers: crun,runc,bwrap,runsc,docker,podman (also bubblewrap, gvisor); "
                   "'none' for none")
      ->capture_default_str();
  command->add_option("--nucleus", options.nucleus_binary, "The nucleus binary")->capture_default_str();
  command->add_option("--previous", options.previous_binary,
                      "Another nucleus binary (e.g. the build before a change), measured as one more subject");
  command->add_option("--json", options.json_path, "Also write the results (with every sample) as JSON here");
  command->add_option("--plot", options.plot_path, "Also draw an SVG bar chart here (needs gnuplot)");
  command->add_option("--rootfs", options.rootfs_dir, "Build/reuse the busybox rootfs here and keep it");
  command->add_option("--closure", options.closure_manifest,
                      "Also run the entrypoint of this closure manifest (nix/scratch-closure.sh builds one)");
  command->add_flag("--quick", raw->quick, "Smoke run: 10 rounds after 2 warm-up (unless given)");
  command->callback([&options, raw, runs, warmup] {
    if (raw->quick) {
      if (runs->count() == 0) options.runs = 10;
      if (warmup->count() == 0) options.warmup = 2;
    }
    options.peers.clear();
    if (raw->peers == "none") return;
    for (const auto& name : split(raw->peers, ',')) {
      const auto key = canonical_peer(name);
      if (!key) throw CLI::ValidationError("--peers", "unknown peer '" + name + "'");
      if (std::find(options.peers.begin(), options.peers.end(), *key) == options.peers.end())
        options.peers.push_back(*key);
    }
  });
  return command;
}

int run_coldstart(const ColdstartOptions& options) {
  install_interrupt_handlers();
  const Environment env = describe_environment();  // the load before we add ours
  std::vector<NotRun> not_run;

  // Before any subject runs, so that all of them share one mount namespace.
  std::string cgroup_error;
  if (std::any_of(options.peers.begin(), options.peers.end(), peer_needs_cgroup2)) {
    cgroup_error = enter_private_cgroup2_namespace();
  }

  const ScratchDir scratch;
  const fs::path rootfs = options.rootfs_dir.empty() ? scratch.path() / "rootfs" : fs::absolute(options.rootfs_dir);
  build_busybox_rootfs(rootfs);

  const std::string nucleus = find_executable(options.nucleus_binary).value_or(options.nucleus_binary);
  std::vector<SubjectResult> results;
  results.emplace_back(make_bare_subject(rootfs));
  results.emplace_back(make_nucleus_subject(kBaselineName, nucleus, rootfs, {}));
  results.emplace_back(make_nucleus_subject("nucleus agent --network host", nucleus, rootfs, {"--network", "host"}));
  results.emplace_back(make_nucleus_subject("nucleus strict-agent", nucleus, rootfs, {"--strict-agent"}));
  if (!options.closure_manifest.empty()) {  // the same busybox `true`, from a store closure
    Subject closure = make_nucleus_subject("nucleus agent, closure rootfs", nucleus, rootfs, {});
    closure.argv = {nucleus, "run", "--rootfs-closure", options.closure_manifest};
    results.emplace_back(std::move(closure));
  }
  if (!options.previous_binary.empty()) {
    const std::string previous = find_executable(options.previous_binary).value_or(options.previous_binary);
    results.emplace_back(make_nucleus_subject("nucleus agent, previous binary", previous, rootfs, {}));
  }
  Progress progress;
  for (const auto& key : options.peers) {
    progress.update("setting up " + key + " ...");
    PeerSetup setup = (peer_needs_cgroup2(key) && !cgroup_error.empty())
                          ? PeerSetup{std::nullopt, "needs cgroup2 at /sys/fs/cgroup: " + cgroup_error}
                          : prepare_peer(key, rootfs, scratch.path());
    if (setup.subject) {
      results.emplace_back(std::move(*setup.subject));
    } else {
      not_run.push_back({key, setup.not_run_reason});
    }
  }

  // One probe run each with stderr captured: a peer that cannot run here is
  // listed with its own error text; bare and nucleus failures are results.
  unsigned long sequence = 0;  // unique container IDs across probe, warm-up and rounds
  std::vector<std::vector<std::string>> cleanups;
  std::erase_if(results, [&](SubjectResult& result) {
    progress.update("probing " + result.subject.name + " ...");
    const RunOutcome probe = run_once(result.subject.argv_for_run(sequence++), /*capture_stderr=*/true);
    if (probe.success) return false;
    const std::string reason = one_line(probe.failure + (probe.stderr_text.empty() ? "" : ": " + probe.stderr_text));
    if (result.subject.kind != "bare" && result.subject.kind != "nucleus") {
      not_run.push_back({result.subject.name, "probe run failed: " + reason});
      for (auto& cleanup : result.subject.cleanup) cleanups.push_back(cleanup);
      return true;
    }
    std::cerr << "nucleus-bench: warning: " << result.subject.name << " probe run failed: " << reason << '\n';
    return false;
  });

  unsigned rounds_done = 0;
  const std::size_t count = results.size();
  // A new order every round. Rotating one order (A B C, B C A, ...) keeps
  // each subject's predecessor fixed, and a predecessor leaves work behind
  // that the next run pays for: a network namespace is torn down
  // asynchronously (~28 ms of kernel work here) while the next subject
  // runs. Shuffled, every subject follows every other alike.
  std::vector<std::size_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 shuffle_seed(20261203);
  for (unsigned round = 0; round < options.warmup + options.runs && !g_interrupted; ++round) {
    const bool measuring = round >= options.warmup;
    progress.update(measuring
                        ? "round " + std::to_string(round - options.warmup + 1) + "/" + std::to_string(options.runs)
                        : "warm-up " + std::to_string(round + 1) + "/" + std::to_string(options.warmup));
    std::shuffle(order.begin(), order.end(), shuffle_seed);
    for (std::size_t i = 0; i < count && !g_interrupted; ++i) {
      auto& result = results[order[i]];
      const RunOutcome outcome = run_once(result.subject.argv_for_run(sequence++));
      if (!measuring) continue;
      if (outcome.success) {
        result.samples_ms.push_back(outcome.elapsed_ms);
      } else if (result.failures++ == 0) {
        result.first_failure = outcome.failure;
      }
    }
    if (measuring && !g_interrupted) ++rounds_done;
  }
  progress.finish();
  for (const auto& result : results)
    for (const auto& cleanup : result.subject.cleanup) cleanups.push_back(cleanup);
  for (const auto& cleanup : cleanups) run_capture(cleanup);
  if (g_interrupted) {
    std::cerr << "nucleus-bench: interrupted after " << rounds_done << " rounds\n";
    return 130;
  }

  const json report = to_json(env, rootfs, options, rounds_done, results, not_run);
  print_markdown(report);
  int status =
      std::all_of(results.begin(), results.end(), [](const SubjectResult& r) { return !r.samples_ms.empty(); }) ? 0 : 1;
  if (!options.json_path.empty() && !write_json(options.json_path, report)) status = 1;
  if (!options.plot_path.empty()) {
    const std::string error = plot_coldstart(report, options.plot_path);
    if (!error.empty()) {
      std::cerr << "nucleus-bench: no chart: " << error << '\n';
      status = 1;
    }
  }
  return status;
}

}  // namespace nucleus::bench
