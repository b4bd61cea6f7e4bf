#include "plot.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "process.hpp"
#include "rootfs.hpp"

namespace fs = std::filesystem;

namespace nucleus::bench {
namespace {

// A gnuplot string literal: single quotes, where only '' needs escaping.
std::string gp_string(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  return quoted + "'";
}

// A data-file column: double-quoted, without characters that would end it.
std::string data_label(std::string text) {
  std::replace(text.begin(), text.end(), '"', '\'');
  return "\"" + text + "\"";
}

std::string svg_header(const std::string& svg_path, const std::string& title) {
  return "set terminal svg size 960,540 dynamic enhanced font 'sans,11' background rgb 'white'\n"
         "set output " +
         gp_string(fs::absolute(svg_path).string()) +
         "\n"
         "set title " +
         gp_string(title) +
         " noenhanced\n"
         "set style fill solid 0.7 border -1\n"
         "set grid ytics\n"
         "set datafile missing '?'\n";
}

std::string run_gnuplot(const std::string& data, const std::string& script) {
  const auto gnuplot = find_executable("gnuplot");
  if (!gnuplot) return "gnuplot not found: install gnuplot-nox (apt-get install gnuplot-nox) for --plot";
  const ScratchDir scratch("nucleus-bench-plot");
  std::ofstream(scratch.path() / "data.dat") << data;
  std::ofstream(scratch.path() / "plot.gp") << script;
  CaptureOptions options;
  options.cwd = scratch.path().string();
  options.timeout_s = 60;
  const Captured got = run_capture({*gnuplot, (scratch.path() / "plot.gp").string()}, options);
  if (!got.ok()) return "gnuplot failed: " + got.failure();
  return "";
}

}  // namespace

std::string plot_coldstart(const json& report, const std::string& svg_path) {
  std::ostringstream data;
  double low = std::numeric_limits<double>::max(), high = 0;
  int index = 0;
  for (const auto& subject : report.at("subjects")) {
    if (subject.at("median_ms").is_null()) continue;
    const double median = subject.at("median_ms").get<double>(), p90 = subject.at("p90_ms").get<double>();
    data << index++ << ' ' << data_label(subject.at("name").get<std::string>()) << ' ' << median << ' ' << p90 << '\n';
    low = std::min(low, median);
    high = std::max(high, p90);
  }
  if (index == 0) return "no subject has samples to plot";
  const bool log_scale = high / low > 30;
  std::ostringstream script;
  script << svg_header(svg_path, "nucleus-bench coldstart: /bin/true, median (bar) and p90 (whisker), " +
                                     std::to_string(report.value("runs", 0)) + " interleaved rounds; " +
                                     report.value("kernel", std::string()) + ", " +
                                     std::to_string(report.value("cpus", 0)) + " CPUs")
         << "set ylabel 'milliseconds" << (log_scale ? " (log scale)" : "") << "'\n"
         << (log_scale ? "set logscale y\n" : "") << "set yrange [" << (log_scale ? low / 2 : 0) << ":"
         << high * (log_scale ? 3 : 1.2) << "]\n"
         << "set xrange [-0.6:" << index - 0.4 << "]\n"
         << "set boxwidth 0.6\n"
         << "set xtics rotate by -25 nomirror noenhanced\n"
         << "unset key\n"
         << "plot 'data.dat' using 1:3:xtic(2) with boxes lc rgb '#4c78a8', \\\n"
         << "     '' using 1:3:3:4 with yerrorbars lc rgb 'black' pt 0, \\\n"
         << "     '' using 1:4:(sprintf('%.2f', $3)) with labels offset 0,0.8 font ',9'\n";
  return run_gnuplot(data.str(), script.str());
}

std::string plot_pgbench(const json& report, const std::string& svg_path) {
  std::vector<std::string> environments, workloads;
  for (const auto& row : report.at("results")) {
    const auto env = row.at("environment").get<std::string>(), workload = row.at("workload").get<std::string>();
    if (std::find(environments.begin(), environments.end(), env) == environments.end()) environments.push_back(env);
    if (std::find(workloads.begin(), workloads.end(), workload) == workloads.end()) workloads.push_back(workload);
  }
  if (workloads.empty()) return "no results to plot";
  // One row per environment, one column per workload; each workload gets its
  // own panel and y axis (select-only runs ~100x the TPS of TPC-B).
  std::ostringstream data;
  for (std::size_t e = 0; e < environments.size(); ++e) {
    data << e << ' ' << data_label(environments[e]);
    for (const auto& workload : workloads) {
      std::string value = "?";
      for (const auto& row : report.at("results"))
        if (row.at("environment") == environments[e] && row.at("workload") == workload && !row.at("tps").is_null())
          value = std::to_string(row.at("tps").get<double>());
      data << ' ' << value;
    }
    data << '\n';
  }
  std::ostringstream script;
  script << svg_header(svg_path, "") << "set multiplot layout 1," << workloads.size() << " title "
         << gp_string("nucleus-bench pgbench: average TPS (scale " + std::to_string(report.value("scale", 0)) + ", " +
                      std::to_string(report.value("clients", 0)) + " clients, " +
                      std::to_string(report.value("duration_s", 0)) + " s x " +
                      std::to_string(report.value("runs", 0)) + " runs); " + report.value("kernel", std::string()) +
                      ", " + std::to_string(report.value("cpus", 0)) + " CPUs")
         << " noenhanced\n"
         << "set ylabel 'transactions per second (higher is better)'\n"
         << "set yrange [0:*]\n"
         << "set offsets 0,0,graph 0.1,0\n"
         << "set xrange [-0.6:" << environments.size() - 0.4 << "]\n"
         << "set boxwidth 0.6\n"
         << "set xtics rotate by -20 nomirror noenhanced\n"
         << "unset key\n";
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    const std::size_t column = w + 3;
    script << "set title " << gp_string(workloads[w]) << " noenhanced\n"
           << "plot 'data.dat' using 1:" << column << ":xtic(2) with boxes lc rgb '#4c78a8', \\\n"
           << "     '' using 1:" << column << ":(sprintf('%.0f', $" << column
           << ")) with labels offset 0,0.8 font ',9'\n";
  }
  script << "unset multiplot\n";
  return run_gnuplot(data.str(), script.str());
}

}  // namespace nucleus::bench
