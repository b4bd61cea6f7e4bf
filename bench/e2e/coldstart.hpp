// `nucleus-bench coldstart`: interleaved cold-start latency of
// `nucleus run -- /bin/true` against bare exec and peer runtimes, all on one
// static busybox rootfs.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace nucleus::bench {

struct ColdstartOptions {
  unsigned runs = 200;
  unsigned warmup = 10;
  std::vector<std::string> peers;  // canonical keys, see known_peers()
  std::string nucleus_binary;
  std::string previous_binary;  // another nucleus, run as one more subject: a change's ratio in one run
  std::string json_path;
  std::string plot_path;
  std::string rootfs_dir;  // empty: a scratch rootfs removed at exit
  std::string closure_manifest;  // also measure a Nix closure root (its entrypoint: busybox true)
};

CLI::App* add_coldstart_command(CLI::App& app, ColdstartOptions& options);

// 0 when every measured subject had at least one successful run; 1 otherwise;
// 130 when interrupted.
int run_coldstart(const ColdstartOptions& options);

}  // namespace nucleus::bench
