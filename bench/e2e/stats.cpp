#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace nucleus::bench {

double percentile(std::vector<double> samples, double fraction) {
  std::sort(samples.begin(), samples.end());
  const double rank = fraction * static_cast<double>(samples.size() - 1);
  const auto lower = static_cast<std::size_t>(std::floor(rank));
  const std::size_t upper = std::min(lower + 1, samples.size() - 1);
  const double weight = rank - static_cast<double>(lower);
  return samples[lower] + (samples[upper] - samples[lower]) * weight;
}

LatencySummary summarize(const std::vector<double>& samples_ms) {
  return LatencySummary{
      .median_ms = percentile(samples_ms, 0.50),
      .p90_ms = percentile(samples_ms, 0.90),
      .p99_ms = percentile(samples_ms, 0.99),
  };
}

}  // namespace nucleus::bench
