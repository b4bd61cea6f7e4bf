// Order statistics of latency samples.
#pragma once

#include <vector>

namespace nucleus::bench {

struct LatencySummary {
  double median_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
};

// Percentile with linear interpolation between closest ranks (the numpy
// default), so the median of an even-sized sample is the usual midpoint mean.
// `fraction` is in [0, 1]; `samples` must be non-empty.
double percentile(std::vector<double> samples, double fraction);

// `samples` must be non-empty.
LatencySummary summarize(const std::vector<double>& samples_ms);

}  // namespace nucleus::bench
