// `nucleus-bench spawn`: sandbox churn through the daemon API. C client
// threads each loop create -> wait -> delete of `/bin/true` sandboxes against
// a private `nucleus daemon`; reports throughput, request-to-exit latency,
// the daemon's RSS and what the run leaked.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace nucleus::bench {

struct SpawnOptions {
  unsigned count = 1000;
  unsigned concurrency = 4;
  double rate = 0;  // > 0: open loop, requests due at this many per second
  unsigned warmup = 0;  // 0: 2 per client thread
  std::string nucleus_binary;
  std::string json_path;
  std::string rootfs_dir;  // empty: a scratch rootfs removed at exit
  std::string state_parent;  // empty: the daemon's state beside its socket in the scratch dir
  std::string network = "host";  // host, none, egress (with one --allow-domain rule), or bridge (the daemon
      // in a network namespace of its own)
};

CLI::App* add_spawn_command(CLI::App& app, SpawnOptions& options);

// 0 when every sandbox spawned and nothing leaked; 1 otherwise; 130 when
// interrupted.
int run_spawn(const SpawnOptions& options);

}  // namespace nucleus::bench
