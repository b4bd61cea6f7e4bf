// `nucleus-bench density`: N `sleep 3600` sandboxes held at once by a private
// `nucleus daemon`; host memory per sandbox, the daemon's RSS and idle
// wake-ups with all of them live, the time to tear them all down, and leaks.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace nucleus::bench {

struct DensityOptions {
  unsigned count = 1000;
  unsigned concurrency = 4;
  double idle_s = 5;  // window for the daemon's context-switch count
  std::string nucleus_binary;
  std::string json_path;
  std::string rootfs_dir;
  std::string closure_manifest;  // sandboxes on this Nix closure instead (its roots' bin/sleep)
};

CLI::App* add_density_command(CLI::App& app, DensityOptions& options);

// 0 when all N ran and were removed without leaks; 1 otherwise; 130 when
// interrupted.
int run_density(const DensityOptions& options);

}  // namespace nucleus::bench
