// nucleus-bench: end-to-end benchmarks of the nucleus runtime against bare
// metal and its peers. Usage errors exit 2; each subcommand decides 0/1 from
// its results (130 when interrupted).
#include <exception>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "coldstart.hpp"
#include "density.hpp"
#include "egress.hpp"
#include "pgbench.hpp"
#include "plot.hpp"
#include "spawn.hpp"

namespace {

// Redraws a chart from a report written earlier with --json.
int replot(const std::string& json_path, const std::string& svg_path) {
  std::ifstream in(json_path);
  const auto report = nucleus::bench::json::parse(in);  // throws with the position on bad input
  const auto kind = report.value("benchmark", std::string());
  std::string error;
  if (kind == "coldstart") {
    error = nucleus::bench::plot_coldstart(report, svg_path);
  } else if (kind == "pgbench") {
    error = nucleus::bench::plot_pgbench(report, svg_path);
  } else {
    error = json_path + " is not a nucleus-bench report (\"benchmark\": \"" + kind + "\")";
  }
  if (error.empty()) return 0;
  std::cerr << "nucleus-bench: no chart: " << error << '\n';
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nucleus-bench: benchmarks nucleus against bare metal and peer container runtimes"};
  app.require_subcommand(1);
  nucleus::bench::ColdstartOptions coldstart_options;
  CLI::App* coldstart = nucleus::bench::add_coldstart_command(app, coldstart_options);
  nucleus::bench::PgbenchOptions pgbench_options;
  CLI::App* pgbench = nucleus::bench::add_pgbench_command(app, pgbench_options);
  nucleus::bench::SpawnOptions spawn_options;
  CLI::App* spawn = nucleus::bench::add_spawn_command(app, spawn_options);
  nucleus::bench::DensityOptions density_options;
  CLI::App* density = nucleus::bench::add_density_command(app, density_options);
  nucleus::bench::EgressOptions egress_options;
  nucleus::bench::EgressServeOptions egress_serve_options;
  nucleus::bench::EgressClientOptions egress_client_options;
  CLI::App *egress = nullptr, *egress_serve = nullptr, *egress_client = nullptr;
  nucleus::bench::add_egress_commands(app, egress_options, egress_serve_options, egress_client_options, egress,
                                      egress_serve, egress_client);
  std::string replot_json, replot_svg;
  CLI::App* plot = app.add_subcommand("plot", "Draw the SVG chart of a report saved with --json (needs gnuplot)");
  plot->add_option("report", replot_json, "FILE.json from coldstart or pgbench --json")
      ->required()
      ->check(CLI::ExistingFile);
  plot->add_option("svg", replot_svg, "FILE.svg to write")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;  // --help is a ParseError that exits 0
  }
  try {
    if (coldstart->parsed()) return nucleus::bench::run_coldstart(coldstart_options);
    if (pgbench->parsed()) return nucleus::bench::run_pgbench(pgbench_options);
    if (spawn->parsed()) return nucleus::bench::run_spawn(spawn_options);
    if (density->parsed()) return nucleus::bench::run_density(density_options);
    if (plot->parsed()) return replot(replot_json, replot_svg);
    if (egress->parsed()) return nucleus::bench::run_egress(egress_options);
    if (egress_serve->parsed()) return nucleus::bench::run_egress_serve(egress_serve_options);
    if (egress_client->parsed()) return nucleus::bench::run_egress_client(egress_client_options);
  } catch (const std::exception& error) {
    std::cerr << "\nnucleus-bench: " << error.what() << '\n';
    return 1;
  }
  return 2;
}
