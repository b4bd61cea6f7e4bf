// `nucleus-bench pgbench`: PostgreSQL 15 throughput on the bare host against
// the same server inside `nucleus run` (agent with the host's network, and
// strict-agent), pgbench on the host as the client, runs interleaved.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace nucleus::bench {

struct PgbenchOptions {
  unsigned scale = 10;
  unsigned clients = 4;
  unsigned duration_s = 20;
  unsigned runs = 2;
  std::string json_path;
  std::string plot_path;
  std::string nucleus_binary;
  std::string pg_bin = "/usr/lib/postgresql/15/bin";
  std::string user = "nucleus-bench";  // runs postgres when nucleus-bench runs as root
};

CLI::App* add_pgbench_command(CLI::App& app, PgbenchOptions& options);

// 0 when the bare server and every nucleus environment produced results; 1
// otherwise (the reasons are in the report); 130 when interrupted.
int run_pgbench(const PgbenchOptions& options);

}  // namespace nucleus::bench
