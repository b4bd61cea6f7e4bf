#include "pgbench.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <regex>
#include <sstream>

#include <CLI/CLI.hpp>

#include "plot.hpp"
#include "process.hpp"
#include "report.hpp"
#include "rootfs.hpp"

#ifndef NUCLEUS_DEFAULT_BINARY
#define NUCLEUS_DEFAULT_BINARY "nucleus"
#endif

namespace fs = std::filesystem;

namespace nucleus::bench {
namespace {

constexpr const char* kPgUser = "postgres";  // the database role initdb creates (-U)
constexpr const char* kBare = "bare";

struct Workload {
  std::string name;
  std::vector<std::string> args;
};

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> list = {
      {"select-only (-S)", {"-S", "-n"}},  // no vacuum: nothing is written
      {"TPC-B (default)", {}},
  };
  return list;
}

struct Measurement {
  std::vector<double> tps;
  std::vector<double> latency_ms;
  unsigned long failed_transactions = 0;
  std::string error;  // the last failure of pgbench itself
};

struct Setting {
  std::string name;
  std::vector<std::string> server_argv;  // postgres, or nucleus run ... -- postgres
  std::optional<Credentials> server_as;  // bare postgres drops to the user itself
  std::string error;  // why it could not run (then skipped)
  std::vector<Measurement> results;  // one per workload
};

double mean(const std::vector<double>& values) {
  return values.empty() ? 0 : std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

std::string tail_of_file(const fs::path& path, std::size_t bytes = 600) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  if (all.size() > bytes) all = all.substr(all.size() - bytes);
  return one_line(all);
}

// The user postgres runs as: it refuses to run as root. As root, the named
// system user (created if it is `nucleus-bench` and missing), else nobody.
// Not root: ourselves.
struct RunAs {
  std::optional<Credentials> drop;  // set when we are root
  uid_t uid;
  gid_t gid;
  std::string name;
};

RunAs resolve_user(const std::string& name) {
  if (::geteuid() != 0) {
    const passwd* self = ::getpwuid(::geteuid());
    return {std::nullopt, ::geteuid(), ::getegid(), self ? self->pw_name : std::to_string(::geteuid())};
  }
  const passwd* entry = ::getpwnam(name.c_str());
  if (!entry && name == "nucleus-bench") {
    if (const auto useradd = find_executable("useradd")) {
      const Captured made = run_capture({*useradd, "--system", "--user-group", "--no-create-home", "--home-dir",
                                         "/nonexistent", "--shell", "/usr/sbin/nologin", name});
      if (!made.ok()) std::cerr << "nucleus-bench: useradd " << name << ": " << made.failure() << '\n';
      entry = ::getpwnam(name.c_str());
    }
  }
  if (!entry) {
    std::cerr << "nucleus-bench: no user " << name << "; running postgres as nobody\n";
    entry = ::getpwnam("nobody");
    if (!entry) throw std::runtime_error("neither user " + name + " nor nobody exists");
  }
  return {Credentials{entry->pw_uid, entry->pw_gid}, entry->pw_uid, entry->pw_gid, entry->pw_name};
}

std::optional<double> parse_number_after(const std::string& text, const std::string& label) {
  const std::regex pattern(label + " = ([0-9.]+)");
  std::smatch match;
  if (!std::regex_search(text, match, pattern)) return std::nullopt;
  return std::stod(match[1]);
}

class Bench {
public:
  explicit Bench(const PgbenchOptions& options)
      : options_(options),
        bin_(options.pg_bin),
        nucleus_(find_executable(options.nucleus_binary).value_or(options.nucleus_binary)),
        user_(resolve_user(options.user)),
        scratch_("nucleus-bench-pg"),
        data_(scratch_.path() / "data"),
        sockets_(scratch_.path() / "sock") {}

  int run();

private:
  std::vector<std::string> postgres_args(const fs::path& root) const {
    // Only a unix socket in the scratch directory: strict-agent keeps its own
    // network namespace, where the host cannot reach 127.0.0.1, but a socket
    // in a bind-mounted directory is reachable from both sides.
    return {(bin_ / "postgres").string(),
            "-D",
            (root / "data").string(),
            "-c",
            "listen_addresses=",
            "-c",
            "unix_socket_directories=" + (root / "sock").string()};
  }
  std::vector<std::string> nucleus_args(const std::vector<std::string>& mode) const {
    std::vector<std::string> argv = {nucleus_, "run"};
    argv.insert(argv.end(), mode.begin(), mode.end());
    // keep-id: the workload's uid is the data directory owner's on the host.
    // The scratch directory (data + socket) is the workspace, read-write; the
    // binaries come from the default read-only host root (/usr), so the
    // workspace stays noexec.
    const std::string ids = std::to_string(user_.uid) + ":" + std::to_string(user_.gid);
    for (const char* arg : {"--userns", "keep-id", "--user"}) argv.emplace_back(arg);
    argv.insert(argv.end(), {ids, "--workspace", scratch_.path().string(), "--workspace-mode", "bind-rw", "--name",
                             "nucleus-bench-pg-" + std::to_string(::getpid()), "--"});
    for (auto& arg : postgres_args("/workspace")) argv.push_back(arg);
    return argv;
  }
  Captured as_user(const std::vector<std::string>& argv, double timeout_s, std::function<void()> tick = {}) {
    CaptureOptions capture;
    capture.as = user_.drop;
    capture.cwd = scratch_.path().string();
    capture.timeout_s = timeout_s;
    capture.tick = std::move(tick);
    return run_capture(argv, capture);
  }
  Captured client(std::vector<std::string> args, double timeout_s, std::function<void()> tick = {}) {
    std::vector<std::string> argv = {(bin_ / "pgbench").string(), "-h", sockets_.string(), "-U", kPgUser};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("postgres");
    CaptureOptions capture;
    capture.timeout_s = timeout_s;
    capture.tick = std::move(tick);
    capture.cwd = "/";
    return run_capture(argv, capture);
  }
  // Starts the setting's server and waits until it accepts connections;
  // on failure returns null with `error` set (the server's own words).
  std::unique_ptr<Server> start(const Setting& setting, std::string& error);
  void measure(Setting& setting, unsigned round);
  json report_json(const Environment& env) const;
  void print_markdown(const json& report) const;

  const PgbenchOptions& options_;
  const fs::path bin_;
  const std::string nucleus_;
  const RunAs user_;
  const ScratchDir scratch_;
  const fs::path data_, sockets_;
  std::vector<Setting> settings_;
  std::string postgres_version_;
  std::string init_note_;
  Progress progress_;
  unsigned threads_ = 1;
  unsigned log_sequence_ = 0;
};

std::unique_ptr<Server> Bench::start(const Setting& setting, std::string& error) {
  const fs::path log = scratch_.path() / ("server-" + std::to_string(log_sequence_++) + ".log");
  auto server = std::make_unique<Server>(setting.server_argv, setting.server_as, log.string());
  const auto isready = (bin_ / "pg_isready").string();
  for (int attempt = 0; attempt < 600 && !g_interrupted; ++attempt) {  // 60 s
    if (!server->running()) {
      error = "server exited (" + server->exit_description() + "): " + tail_of_file(log);
      return nullptr;
    }
    CaptureOptions quick;
    quick.timeout_s = 5;
    if (run_capture({isready, "-q", "-h", sockets_.string(), "-U", kPgUser}, quick).ok()) return server;
    ::usleep(100000);
  }
  error = g_interrupted ? "interrupted" : "not accepting connections after 60 s: " + tail_of_file(log);
  server->stop();
  return nullptr;
}

void Bench::measure(Setting& setting, unsigned round) {
  progress_.update("round " + std::to_string(round + 1) + "/" + std::to_string(options_.runs) + ": starting " +
                   setting.name + " ...");
  std::string error;
  auto server = start(setting, error);
  if (!server) {
    if (!g_interrupted) setting.error = error;
    return;
  }
  for (std::size_t w = 0; w < workloads().size() && !g_interrupted; ++w) {
    const Workload& workload = workloads()[w];
    std::vector<std::string> args = {"-c", std::to_string(options_.clients),   "-j", std::to_string(threads_),
                                     "-T", std::to_string(options_.duration_s)};
    args.insert(args.end(), workload.args.begin(), workload.args.end());
    const auto started = std::chrono::steady_clock::now();
    auto tick = [&] {
      const auto seconds =
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started).count();
      progress_.update("round " + std::to_string(round + 1) + "/" + std::to_string(options_.runs) + ": " +
                       setting.name + ", " + workload.name + " " + std::to_string(seconds) + "/" +
                       std::to_string(options_.duration_s) + " s");
    };
    const Captured got = client(args, options_.duration_s + 120.0, tick);
    Measurement& m = setting.results[w];
    const auto tps = parse_number_after(got.out, "tps");
    const auto latency = parse_number_after(got.out, "latency average");
    if (!got.ok() || !tps || !latency) {
      if (!g_interrupted) m.error = "pgbench " + got.failure();
      continue;
    }
    m.tps.push_back(*tps);
    m.latency_ms.push_back(*latency);
    std::smatch failed;
    if (std::regex_search(got.out, failed, std::regex("number of failed transactions: ([0-9]+)"))) {
      m.failed_transactions += std::stoul(failed[1]);
    }
  }
  if (!server->stop()) {
    std::cerr << "nucleus-bench: " << setting.name << " did not stop within 20 s; killed\n";
    if (setting.name != kBare) run_capture({nucleus_, "gc"});
  }
}

int Bench::run() {
  for (const char* tool : {"initdb", "postgres", "pgbench", "pg_isready"}) {
    if (::access((bin_ / tool).c_str(), X_OK) != 0) {
      throw std::runtime_error((bin_ / tool).string() +
                               " not found: install PostgreSQL 15 (apt-get install postgresql-15 postgresql-contrib), "
                               "or point --pg-bin at its bin directory");
    }
  }
  const Environment env = describe_environment();
  threads_ = std::max(1u, std::min(options_.clients, static_cast<unsigned>(std::max(1, env.cpus))));
  postgres_version_ = tool_version({(bin_ / "postgres").string(), "--version"});

  // The scratch directory belongs to the user (the sandbox maps the same uid
  // with keep-id); postgres insists that data/ is 0700 and its own.
  fs::create_directories(sockets_);
  for (const auto& dir : {scratch_.path(), sockets_}) {
    if (::chown(dir.c_str(), user_.uid, user_.gid) != 0) throw std::runtime_error("chown " + dir.string() + " failed");
  }
  progress_.update("initdb ...");
  const Captured initdb = as_user({(bin_ / "initdb").string(), "-D", data_.string(), "-U", kPgUser, "--auth=trust",
                                   "--no-sync", "-E", "UTF8", "--locale=C"},
                                  120);
  if (!initdb.ok()) throw std::runtime_error("initdb failed: " + initdb.failure());

  settings_.push_back({kBare, postgres_args(scratch_.path()), user_.drop, "", {}});
  settings_.push_back({"nucleus agent (--network host)", nucleus_args({"--network", "host"}), std::nullopt, "", {}});
  settings_.push_back({"nucleus strict-agent", nucleus_args({"--strict-agent"}), std::nullopt, "", {}});
  for (auto& setting : settings_) setting.results.resize(workloads().size());

  {  // pgbench -i against the bare server, once: every setting uses these tables
    std::string error;
    auto server = start(settings_[0], error);
    if (!server) throw std::runtime_error(g_interrupted ? "interrupted" : "the bare server did not start: " + error);
    progress_.update("pgbench -i -s " + std::to_string(options_.scale) + " ...");
    const Captured init = client({"-i", "-q", "-s", std::to_string(options_.scale)}, 900);
    if (!init.ok()) throw std::runtime_error(g_interrupted ? "interrupted" : "pgbench -i failed: " + init.failure());
    server->stop();
  }

  // Interleaved: every round starts each setting's server afresh, the order
  // rotating so that no setting always runs first (cold caches) or last.
  for (unsigned round = 0; round < options_.runs && !g_interrupted; ++round) {
    for (std::size_t i = 0; i < settings_.size() && !g_interrupted; ++i) {
      Setting& setting = settings_[(i + round) % settings_.size()];
      if (setting.error.empty()) measure(setting, round);
    }
  }
  progress_.finish();
  if (g_interrupted) {
    std::cerr << "nucleus-bench: interrupted\n";
    return 130;
  }
  const json report = report_json(env);
  print_markdown(report);
  int status = 0;
  for (const auto& row : report["results"])
    if (row["tps"].is_null()) status = 1;
  if (!options_.json_path.empty() && !write_json(options_.json_path, report)) status = 1;
  if (!options_.plot_path.empty()) {
    const std::string error = plot_pgbench(report, options_.plot_path);
    if (!error.empty()) {
      std::cerr << "nucleus-bench: no chart: " << error << '\n';
      status = 1;
    }
  }
  return status;
}

json Bench::report_json(const Environment& env) const {
  json settings = json::array(), results = json::array(), not_run = json::array();
  for (const auto& setting : settings_) {
    settings.push_back({{"name", setting.name},
                        {"command", join_command(setting.server_argv)},
                        {"error", setting.error.empty() ? json(nullptr) : json(setting.error)}});
    if (!setting.error.empty()) not_run.push_back({{"name", setting.name}, {"reason", setting.error}});
  }
  for (std::size_t w = 0; w < workloads().size(); ++w) {
    const Measurement& bare = settings_[0].results[w];
    for (const auto& setting : settings_) {
      const Measurement& m = setting.results[w];
      json row = {{"environment", setting.name},
                  {"workload", workloads()[w].name},
                  {"runs", m.tps.size()},
                  {"tps", nullptr},
                  {"latency_ms", nullptr},
                  {"tps_vs_bare_pct", nullptr},
                  {"latency_vs_bare_pct", nullptr},
                  {"failed_transactions", m.failed_transactions},
                  {"tps_runs", m.tps},
                  {"latency_ms_runs", m.latency_ms},
                  {"error", nullptr}};
      if (!m.tps.empty()) {
        row["tps"] = mean(m.tps);
        row["latency_ms"] = mean(m.latency_ms);
        if (&setting != &settings_[0] && !bare.tps.empty()) {
          row["tps_vs_bare_pct"] = (mean(m.tps) / mean(bare.tps) - 1) * 100;
          row["latency_vs_bare_pct"] = (mean(m.latency_ms) / mean(bare.latency_ms) - 1) * 100;
        }
      } else {
        row["error"] = !setting.error.empty() ? setting.error : !m.error.empty() ? m.error : "no run";
      }
      results.push_back(std::move(row));
    }
  }
  json document = {{"benchmark", "pgbench"}};
  document.update(env.to_json());
  document.update(
      json{{"postgres_version", postgres_version_},
           {"scale", options_.scale},
           {"clients", options_.clients},
           {"threads", threads_},
           {"duration_s", options_.duration_s},
           {"runs", options_.runs},
           {"connection", "unix socket in a bind-mounted scratch directory"},
           {"server_user", user_.name + " (" + std::to_string(user_.uid) + ":" + std::to_string(user_.gid) + ")"},
           {"environments", settings},
           {"results", results},
           {"not_run", not_run}});
  return document;
}

void Bench::print_markdown(const json& report) const {
  std::cout << "## nucleus-bench pgbench\n\n"
            << report["postgres_version"].get<std::string>() << ", scale " << options_.scale << ", " << options_.clients
            << " clients, " << threads_ << " threads, " << options_.duration_s << " s per run, " << options_.runs
            << " interleaved runs per environment; server as " << report["server_user"].get<std::string>()
            << ", client on the host over a unix socket; " << report["date"].get<std::string>() << ", kernel "
            << report["kernel"].get<std::string>() << ", " << report["cpus"].get<int>() << " CPUs, load average "
            << format_fixed(report["load1"].get<double>(), 2) << "\n\n"
            << "| environment | workload | runs | avg TPS | avg latency ms | TPS vs bare | latency vs bare |\n"
            << "|---|---|---:|---:|---:|---:|---:|\n";
  auto pct = [](const json& value) {
    if (value.is_null()) return std::string("-");
    const double v = value.get<double>();
    return (v >= 0 ? "+" : "") + format_fixed(v, 1) + " %";
  };
  for (const auto& row : report["results"]) {
    std::cout << "| " << row["environment"].get<std::string>() << " | " << row["workload"].get<std::string>() << " | "
              << row["runs"] << " | ";
    if (row["tps"].is_null()) {
      std::cout << "not run: " << row["error"].get<std::string>() << " | - | - | - |\n";
    } else {
      std::cout << format_fixed(row["tps"].get<double>(), 0) << " | "
                << format_fixed(row["latency_ms"].get<double>(), 3) << " | " << pct(row["tps_vs_bare_pct"]) << " | "
                << pct(row["latency_vs_bare_pct"]) << " |\n";
    }
  }
  for (const auto& row : report["results"]) {
    if (row["failed_transactions"].get<unsigned long>() > 0) {
      std::cout << "\n"
                << row["environment"].get<std::string>() << ", " << row["workload"].get<std::string>() << ": "
                << row["failed_transactions"] << " failed transactions\n";
    }
  }
  if (!report["not_run"].empty()) {
    std::cout << "\nNot run:\n\n| environment | reason |\n|---|---|\n";
    for (const auto& entry : report["not_run"])
      std::cout << "| " << entry["name"].get<std::string>() << " | " << entry["reason"].get<std::string>() << " |\n";
  }
}

}  // namespace

CLI::App* add_pgbench_command(CLI::App& app, PgbenchOptions& options) {
  auto* command = app.add_subcommand(
      "pgbench", "PostgreSQL 15 throughput (pgbench -S and TPC-B) on the bare host vs inside nucleus run, interleaved");
  auto quick = std::make_shared<bool>(false);
  options.nucleus_binary = NUCLEUS_DEFAULT_BINARY;
  auto* scale = command->add_option("--scale", options.scale, "pgbench scale factor (-s)")
                    ->capture_default_str()
                    ->check(CLI::Range(1u, 100000u));
  auto* clients = command->add_option("--clients", options.clients, "pgbench clients (-c)")
                      ->capture_default_str()
                      ->check(CLI::Range(1u, 90u));
  auto* duration = command->add_option("--duration", options.duration_s, "Seconds per pgbench run (-T)")
                       ->capture_default_str()
                       ->check(CLI::Range(1u, 86400u));
  auto* runs = command->add_option("--runs", options.runs, "Runs per environment and workload")
                   ->capture_default_str()
                   ->check(CLI::Range(1u, 1000u));
  command->add_option("--json", options.json_path, "Also write the results as JSON here");
  command->add_option("--plot", options.plot_path, "Also draw an SVG bar chart of TPS here (needs gnuplot)");
  command->add_option("--nucleus", options.nucleus_binary, "The nucleus binary")->capture_default_str();
  command->add_option("--pg-bin", options.pg_bin, "PostgreSQL's bin directory (initdb, postgres, pgbench)")
      ->capture_default_str();
  command
      ->add_option("--user", options.user,
                   "User that runs postgres when nucleus-bench runs as root (created if missing)")
      ->capture_default_str();
  command->add_flag("--quick", *quick, "Smoke run (< 1 min): scale 1, 2 clients, 3 s, 1 run (unless given)");
  command->callback([&options, quick, scale, clients, duration, runs] {
    if (!*quick) return;
    if (scale->count() == 0) options.scale = 1;
    if (clients->count() == 0) options.clients = 2;
    if (duration->count() == 0) options.duration_s = 3;
    if (runs->count() == 0) options.runs = 1;
  });
  return command;
}

int run_pgbench(const PgbenchOptions& options) {
  install_interrupt_handlers();
  Bench bench(options);
  return bench.run();
}

}  // namespace nucleus::bench
