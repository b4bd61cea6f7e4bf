// --ulimit NAME=SOFT[:HARD], pure parsing (the runtime's own hard limits
// are checked at resolution, core/spec/resolve.cpp).
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "core/spec.hpp"

namespace nucleus::core {

Result<UlimitSpec> parse_ulimit(const std::string& text);

// (RLIMIT_*, hard value) for a NAME and HARD text, when both parse.
std::optional<std::pair<int, uint64_t>> ulimit_hard_value(const std::string& name, const std::string& hard);

}  // namespace nucleus::core
