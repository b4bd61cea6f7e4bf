// SVG charts from a report's JSON, drawn by gnuplot (Debian: gnuplot-nox):
// a data file and a script are written to a scratch directory and run.
#pragma once

#include <string>

#include "report.hpp"

namespace nucleus::bench {

// Each returns "" on success, else why no chart was written (e.g. gnuplot is
// not installed).
// Bars of the median per subject with a whisker up to p90 (log scale when
// the subjects span more than a factor of 30).
std::string plot_coldstart(const json& report, const std::string& svg_path);
// Average TPS, one cluster per workload, one bar per environment.
std::string plot_pgbench(const json& report, const std::string& svg_path);

}  // namespace nucleus::bench
