// cgroup v2 resource limits, one file per controller behind one interface.
//
// Limits are written into the sandbox's cgroup before clone, so the child
// is born (CLONE_INTO_CGROUP) already limited. Each controller knows the
// spec fields it serves and whether the host offers it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/error.hpp"

namespace nucleus::isolation {

struct IoMaxLimit {
    uint32_t major = 0;
    uint32_t minor = 0;
    std::optional<uint64_t> rbps, wbps, riops, wiops;
};

struct CgroupLimits {
    // memory
    std::optional<uint64_t> memory_max;
    std::optional<uint64_t> memory_high;
    std::optional<uint64_t> swap_max;  // memory.swap.max (Docker's --memory-swap minus --memory)
    // cpu
    std::optional<uint64_t> cpu_quota_us;  // cpu.max "QUOTA PERIOD"
    uint64_t cpu_period_us = 100000;
    std::optional<uint64_t> cpu_weight;  // 1..10000
    // pids
    std::optional<uint64_t> pids_max;
    // io
    std::optional<uint64_t> io_weight;  // 1..10000
    std::vector<IoMaxLimit> io_max;

    // The controllers these limits need ("memory", "cpu", "pids", "io").
    std::vector<std::string> controllers() const;
};

// One controller: which limits it serves and how to write them.
struct CgroupController {
    const char* name;
    bool (*wanted)(const CgroupLimits&);
    Status (*apply)(int cgroup_dirfd, const CgroupLimits&);
};

const std::vector<CgroupController>& cgroup_controllers();

// Writes every limit into the cgroup (dirfd opened O_DIRECTORY).
Status apply_cgroup_limits(int cgroup_dirfd, const CgroupLimits& limits);

// "1G", "512m", "1048576", "1.5g" -> bytes (binary units, as Docker).
Result<uint64_t> parse_size(const std::string& text);
// "8:0:rbps=1048576,wbps=1m" or "/dev/vda:rbps=1m" -> IoMaxLimit.
Result<IoMaxLimit> parse_io_max(const std::string& text);

}  // namespace nucleus::isolation
