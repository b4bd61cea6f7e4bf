#include "egress.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "process.hpp"
#include "report.hpp"
#include "stats.hpp"

#ifndef NUCLEUS_DEFAULT_BINARY
#define NUCLEUS_DEFAULT_BINARY "nucleus"
#endif

namespace nucleus::bench {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kWorldAddress = "203.0.113.10";

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("readlink /proc/self/exe failed");
  return std::string(buf, static_cast<size_t>(n));
}

void must(const std::vector<std::string>& argv) {
  auto r = run_capture(argv);
  if (!r.ok()) throw std::runtime_error(argv[0] + " " + argv[1] + " " + argv[2] + ": " + r.failure());
}

// The benchmark's own "host" and "world" namespaces and the veth between them.
class Namespaces {
public:
  Namespaces() : host_("nb-h-" + std::to_string(::getpid())), world_("nb-w-" + std::to_string(::getpid())) {
    const std::string ip = "/usr/sbin/ip", vh = "nbh" + std::to_string(::getpid() % 100000),
                      vw = "nbw" + std::to_string(::getpid() % 100000);
    must({ip, "netns", "add", host_});
    made_ = true;
    must({ip, "netns", "add", world_});
    must({ip, "link", "add", vh, "netns", host_, "type", "veth", "peer", "name", vw, "netns", world_});
    for (const auto& [ns, dev, addr] :
         {std::tuple{host_, vh, "198.51.100.1/24"}, std::tuple{world_, vw, "198.51.100.2/24"}}) {
      must({ip, "-n", ns, "link", "set", "lo", "up"});
      must({ip, "-n", ns, "link", "set", dev, "up"});
      must({ip, "-n", ns, "addr", "add", addr, "dev", dev});
    }
    must({ip, "-n", world_, "addr", "add", std::string(kWorldAddress) + "/32", "dev", "lo"});
    must({ip, "-n", host_, "route", "add", "default", "via", "198.51.100.2"});
  }
  ~Namespaces() {
    if (!made_) return;
    (void)run_capture({"/usr/sbin/ip", "netns", "del", world_});
    (void)run_capture({"/usr/sbin/ip", "netns", "del", host_});
  }
  std::vector<std::string> in_host(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"/usr/bin/nsenter", "--net=/run/netns/" + host_, "--"});
    return argv;
  }
  std::vector<std::string> in_world(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"/usr/bin/nsenter", "--net=/run/netns/" + world_, "--"});
    return argv;
  }

private:
  std::string host_, world_;
  bool made_ = false;
};

int listen_on(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || ::listen(fd, 4096) < 0)
    throw std::runtime_error("listening on port " + std::to_string(port) + ": " + std::strerror(errno));
  return fd;
}

bool read_exact(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t k = ::read(fd, p, n);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

void serve_bulk(int client) {
  uint64_t total = 0;
  if (read_exact(client, &total, sizeof total)) {
    std::vector<char> block(1 << 20, 'x');
    while (total > 0) {
      ssize_t k = ::send(client, block.data(), std::min<uint64_t>(total, block.size()), MSG_NOSIGNAL);
      if (k <= 0) break;
      total -= static_cast<uint64_t>(k);
    }
  }
  ::close(client);
}

void serve_echo(int client) {
  char byte;
  while (::read(client, &byte, 1) == 1)
    if (::write(client, &byte, 1) != 1) break;
  ::close(client);
}

void accept_loop(int listener, void (*serve)(int)) {
  for (;;) {
    int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread(serve, c).detach();  // a benchmark server: one thread per connection
  }
}

int dial(const std::string& address, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

struct ModeResult {
  std::vector<double> gbit_per_s;  // one per bulk run
  std::vector<double> connect_us;  // every connection of every run
  std::vector<double> run_ms;  // nucleus run /bin/true
};

double parse_value(const std::string& text, const std::string& key) {
  auto at = text.find(key + "=");
  if (at == std::string::npos) throw std::runtime_error("no " + key + " in the client's output: " + text);
  return std::stod(text.substr(at + key.size() + 1));
}

std::vector<std::string> network_flags(const std::string& mode, const EgressServeOptions& ports) {
  if (mode == "host") return {"--network", "host"};
  if (mode == "none") return {"--network", "none"};
  return {"--allow-cidr", std::string(kWorldAddress) + "/32:" + std::to_string(ports.bulk_port) + "," +
                              std::to_string(ports.echo_port)};
}

double median(std::vector<double> v) { return v.empty() ? 0 : percentile(std::move(v), 0.5); }

}  // namespace

void add_egress_commands(CLI::App& app, EgressOptions& options, EgressServeOptions& serve, EgressClientOptions& client,
                         CLI::App*& egress, CLI::App*& serve_command, CLI::App*& client_command) {
  options.nucleus_binary = NUCLEUS_DEFAULT_BINARY;
  egress = app.add_subcommand("egress", "--network egress against --network host: bulk TCP, connection set-up, spawn");
  egress->add_option("--bytes", options.bytes, "Bytes per bulk transfer")->capture_default_str();
  egress->add_option("--runs", options.runs, "Interleaved rounds")->capture_default_str();
  egress->add_option("--connections", options.connections, "Connections per connect run")->capture_default_str();
  egress->add_option("--spawns", options.spawns, "nucleus run /bin/true per network mode")->capture_default_str();
  egress->add_option("--nucleus", options.nucleus_binary, "The nucleus binary")->capture_default_str();
  egress->add_option("--json", options.json_path, "Also write the results as JSON here");
  serve_command = app.add_subcommand("egress-serve", "(internal) the egress benchmark's world-side servers");
  serve_command->group("");
  serve_command->add_option("--bulk-port", serve.bulk_port);
  serve_command->add_option("--echo-port", serve.echo_port);
  client_command = app.add_subcommand("egress-client", "(internal) the egress benchmark's in-sandbox client");
  client_command->group("");
  client_command->add_option("mode", client.mode)->required();
  client_command->add_option("address", client.address)->required();
  client_command->add_option("port", client.port)->required();
  client_command->add_option("count", client.count)->required();
}

int run_egress_serve(const EgressServeOptions& options) {
  int bulk = listen_on(options.bulk_port), echo = listen_on(options.echo_port);
  std::thread(accept_loop, bulk, serve_bulk).detach();
  accept_loop(echo, serve_echo);
  return 0;
}

int run_egress_client(const EgressClientOptions& options) {
  if (options.mode == "bulk") {
    auto start = Clock::now();
    int fd = dial(options.address, options.port);
    if (fd < 0) return std::perror("connect"), 1;
    uint64_t want = options.count, got = 0;
    if (::write(fd, &want, sizeof want) != sizeof want) return 1;
    std::vector<char> buf(1 << 20);
    for (ssize_t k; (k = ::read(fd, buf.data(), buf.size())) > 0;) got += static_cast<uint64_t>(k);
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::cout << "bytes=" << got << " seconds=" << seconds << "\n";
    return got == want ? 0 : 1;
  }
  std::ostringstream out;
  for (uint64_t i = 0; i < options.count; ++i) {
    auto start = Clock::now();
    int fd = dial(options.address, options.port);
    char byte = 'x';
    if (fd < 0 || ::write(fd, &byte, 1) != 1 || ::read(fd, &byte, 1) != 1) return std::perror("echo"), 1;
    double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    ::close(fd);
    out << "us=" << us << "\n";
  }
  std::cout << out.str();
  return 0;
}

int run_egress(const EgressOptions& options) {
  if (::geteuid() != 0) {
    std::cerr << "nucleus-bench egress: needs root (it makes network namespaces)\n";
    return 1;
  }
  install_interrupt_handlers();
  const auto env = describe_environment();
  Namespaces ns;
  const std::string self = self_exe();
  const fs::path dir = fs::path(self).parent_path();
  EgressServeOptions ports;
  Server server(ns.in_world({self, "egress-serve"}), std::nullopt, "/dev/null");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::vector<std::string> modes = {"host", "egress"};
  std::map<std::string, ModeResult> results;
  Progress progress;
  auto sandbox = [&](const std::string& mode, const std::vector<std::string>& command) {
    std::vector<std::string> argv = {options.nucleus_binary, "run", "-v", dir.string() + ":/bench:ro"};
    for (auto& f : network_flags(mode, ports)) argv.push_back(f);
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    CaptureOptions capture;
    capture.timeout_s = 600;
    auto r = run_capture(ns.in_host(argv), capture);
    if (!r.ok()) throw std::runtime_error("nucleus run (" + mode + "): " + r.failure());
    return r.out;
  };
  for (unsigned round = 0; round < options.runs && !g_interrupted; ++round) {
    for (const auto& mode : modes) {
      progress.update("round " + std::to_string(round + 1) + "/" + std::to_string(options.runs) + ": " + mode);
      auto bulk = sandbox(mode, {"/bench/nucleus-bench", "egress-client", "bulk", kWorldAddress,
                                 std::to_string(ports.bulk_port), std::to_string(options.bytes)});
      results[mode].gbit_per_s.push_back(parse_value(bulk, "bytes") * 8 / parse_value(bulk, "seconds") / 1e9);
      auto connects = sandbox(mode, {"/bench/nucleus-bench", "egress-client", "connect", kWorldAddress,
                                     std::to_string(ports.echo_port), std::to_string(options.connections)});
      std::istringstream lines(connects);
      for (std::string line; std::getline(lines, line);)
        if (line.starts_with("us=")) results[mode].connect_us.push_back(std::stod(line.substr(3)));
    }
  }
  // nucleus run /bin/true per network mode, interleaved: namespace creation
  // and the egress set-up (rules, routes, sockets) are on this path.
  for (unsigned i = 0; i < options.spawns && !g_interrupted; ++i) {
    for (const std::string mode : {"none", "host", "egress"}) {
      progress.update("spawn " + std::to_string(i + 1) + "/" + std::to_string(options.spawns) + ": " + mode);
      std::vector<std::string> argv = {options.nucleus_binary, "run"};
      for (auto& f : network_flags(mode, ports)) argv.push_back(f);
      argv.insert(argv.end(), {"--", "/bin/true"});
      auto r = run_once(ns.in_host(argv), true);
      if (!r.success)
        throw std::runtime_error("nucleus run /bin/true (" + mode + "): " + r.failure + " " + r.stderr_text);
      results[mode].run_ms.push_back(r.elapsed_ms);
    }
  }
  progress.finish();
  server.stop(1, SIGKILL);
  if (g_interrupted) return 130;

  json report = {{"benchmark", "egress"}, {"environment", env.to_json()},       {"bytes", options.bytes},
                 {"runs", options.runs},  {"connections", options.connections}, {"spawns", options.spawns}};
  auto& host = results["host"];
  auto& egress = results["egress"];
  auto summary = [](const std::vector<double>& us) {
    return json{{"p50_us", percentile(us, 0.5)}, {"p90_us", percentile(us, 0.9)}, {"p99_us", percentile(us, 0.99)}};
  };
  report["bulk_gbit_per_s"] = {{"host", host.gbit_per_s}, {"egress", egress.gbit_per_s}};
  report["bulk_ratio"] = median(egress.gbit_per_s) / median(host.gbit_per_s);
  report["connect"] = {{"host", summary(host.connect_us)}, {"egress", summary(egress.connect_us)}};
  report["connect_added_p50_us"] = percentile(egress.connect_us, 0.5) - percentile(host.connect_us, 0.5);
  report["run_true_ms"] = {
      {"none", median(results["none"].run_ms)}, {"host", median(host.run_ms)}, {"egress", median(egress.run_ms)}};
  std::cout << "## nucleus-bench egress\n\n"
            << env.describe() << "\n\n"
            << "| metric | --network host | --network egress | egress vs host |\n|---|---:|---:|---:|\n"
            << "| bulk TCP, Gbit/s (median of " << options.runs << ") | " << median(host.gbit_per_s) << " | "
            << median(egress.gbit_per_s) << " | " << report["bulk_ratio"].get<double>() << "x |\n"
            << "| connect + 1-byte echo, p50 us | " << percentile(host.connect_us, 0.5) << " | "
            << percentile(egress.connect_us, 0.5) << " | +" << report["connect_added_p50_us"].get<double>() << " us |\n"
            << "| connect + 1-byte echo, p99 us | " << percentile(host.connect_us, 0.99) << " | "
            << percentile(egress.connect_us, 0.99) << " | |\n"
            << "| nucleus run /bin/true, median ms (none: " << median(results["none"].run_ms) << ") | "
            << median(host.run_ms) << " | " << median(egress.run_ms) << " | +"
            << median(egress.run_ms) - median(results["none"].run_ms) << " ms vs none |\n";
  if (!options.json_path.empty() && !write_json(options.json_path, report)) return 1;
  return 0;
}

}  // namespace nucleus::bench
