// `nucleus-bench egress`: what `--network egress` costs a workload, against
// `--network host` in the same run.
//
// Two network namespaces of the benchmark's own (never the machine's): a
// "host" one the runtime runs in and a "world" one behind a veth, where
// `nucleus-bench egress-serve` listens on 203.0.113.10. Inside a sandbox,
// `nucleus-bench egress-client` measures
//   - bulk: one TCP connection reading N bytes (throughput);
//   - connect: connect, send a byte, read the echo, close, C times
//     (per-connection latency; egress adds the capture, the policy check,
//     the dial from the host side and the relay's set-up);
// with `--network host` (the sandbox shares the host namespace and dials
// directly) and `--network egress --allow-cidr 203.0.113.10/32:PORTS`
// (every byte through the capture socket and the spliced relay),
// interleaved. It also times `nucleus run /bin/true` with `--network none`,
// `host` and `egress` (namespace creation and the egress set-up are on
// that path; the kernel tears a namespace down asynchronously).
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace nucleus::bench {

struct EgressOptions {
  uint64_t bytes = 1ULL << 30;  // per bulk run
  unsigned runs = 5;  // interleaved rounds
  unsigned connections = 1000;  // per connect run
  unsigned spawns = 100;  // nucleus run /bin/true per network mode
  std::string nucleus_binary;
  std::string json_path;
};

struct EgressServeOptions {
  uint16_t bulk_port = 5001;
  uint16_t echo_port = 5002;
};

struct EgressClientOptions {
  std::string mode;  // bulk | connect
  std::string address;
  uint16_t port = 0;
  uint64_t count = 0;  // bytes (bulk) or connections (connect)
};

void add_egress_commands(CLI::App& app, EgressOptions& options, EgressServeOptions& serve, EgressClientOptions& client,
                         CLI::App*& egress, CLI::App*& serve_command, CLI::App*& client_command);
int run_egress(const EgressOptions& options);
int run_egress_serve(const EgressServeOptions& options);
int run_egress_client(const EgressClientOptions& options);

}  // namespace nucleus::bench
