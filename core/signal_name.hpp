// Signal names, one parser for the CLI (`nucleus kill --signal`) and the
// daemon (`POST .../kill?signal=`).
#pragma once

#include <string_view>

#include "io/error.hpp"

namespace nucleus::core {

// A signal by name or number: "TERM", "SIGTERM", "sigterm", "15",
// "RTMIN", "RTMIN+3", "SIGRTMAX-1". Names are those of sigabbrev_np(3);
// numbers run from 1 to SIGRTMAX.
Result<int> parse_signal(std::string_view text);

}  // namespace nucleus::core
