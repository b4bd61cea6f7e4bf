// Capability names <-> numbers (capabilities(7)).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nucleus::isolation {

// Accepts "CAP_NET_RAW", "net_raw", any case. nullopt for unknown names.
std::optional<int> capability_from_name(std::string_view name);
std::string capability_name(int cap);  // "CAP_NET_RAW"
// The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap).
int last_capability();
// "CAP_CHOWN,CAP_NET_RAW" for a mask; "" for none.
std::string capability_list(uint64_t mask);

}  // namespace nucleus::isolation
