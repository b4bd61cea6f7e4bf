// User namespace id maps, and the allocator of host id ranges.
//
// As root, each sandbox's container ids 0..65535 map onto a host range of its
// own, leased from a pool: a lease is an flock(2) held on a per-slot lock
// file for the life of the `nucleus run` process, so concurrent runs never
// share a range and a crashed run frees its slot with its last descriptor.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/unique_fd.hpp"

namespace nucleus::isolation {

struct IdMapping {
    uint32_t inside;
    uint32_t outside;
    uint32_t count;
};

struct UserNamespaceMaps {
    enum class Method {
        Direct,  // we may write any map (root on the host)
        DirectDenySetgroups,  // unprivileged: one id, setgroups must be "deny"
        Helper,  // unprivileged with /etc/subuid: newuidmap/newgidmap
    };
    Method method = Method::Direct;
    std::vector<IdMapping> uid;
    std::vector<IdMapping> gid;
};

// "inside outside count\n" lines, as /proc/PID/uid_map takes them.
std::string format_map(const std::vector<IdMapping>& map);
// Does `map` translate container id `inside`? Returns the host id or -1.
int64_t map_to_host(const std::vector<IdMapping>& map, uint32_t inside);

constexpr uint32_t id_range_size = 65536;
constexpr uint32_t id_range_base = 1'000'000'000;  // far above /etc/subuid's usual 100000+
constexpr uint32_t id_range_slots = 16384;  // base + slots*size stays below 2^31

class IdRangeLease {
public:
    uint32_t base() const noexcept { return base_; }
    uint32_t slot() const noexcept { return slot_; }

private:
    friend Result<IdRangeLease> lease_id_range(const std::string& lock_dir);
    friend Result<IdRangeLease> lease_id_slot(const std::string& lock_dir, uint32_t slot);
    io::unique_fd lock_;
    uint32_t base_ = 0;
    uint32_t slot_ = 0;
};

// A free host id range: flock on <lock_dir>/slot-N, held while the lease lives.
Result<IdRangeLease> lease_id_range(const std::string& lock_dir);

// That one range again, for a sandbox that outlived the process that leased
// it (a daemon re-adopting after a crash). Fails if someone else holds it.
Result<IdRangeLease> lease_id_slot(const std::string& lock_dir, uint32_t slot);

// The subordinate range /etc/subuid (or subgid) grants `user`/`id`, if any.
struct SubordinateRange {
    uint32_t start = 0;
    uint32_t count = 0;
};
Result<SubordinateRange> find_subordinate_range(const std::string& file, const std::string& user, uid_t id);

}  // namespace nucleus::isolation
