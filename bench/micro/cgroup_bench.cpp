// What a sandbox's cgroup costs: create (mkdir + O_PATH open), write limits,
// remove, with the controllers enabled, against a plain directory on tmpfs
// as the baseline measured in the same run. Meaningful where the
// controllers exist (the system lane: scripts/system-lane.sh BUILD cgroup-bench).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <string>

#include "isolation/cgroup.hpp"
#include "isolation/cgroup/limits.hpp"

using namespace nucleus::isolation;

namespace {

std::string bench_parent() {
    auto mount = find_cgroup2_mount();
    if (!mount) return "";
    return *mount + "/nucleus-bench";
}

CgroupLimits agent_limits() {
    CgroupLimits l;
    l.memory_max = 256ull << 20;
    l.pids_max = 1024;
    l.cpu_quota_us = 100000;
    return l;
}

void BM_DirectoryCreateRemove_Baseline(benchmark::State& state) {
    std::string dir = "/tmp/nucleus-bench-dir";
    for (auto _ : state) {
        ::mkdir(dir.c_str(), 0755);
        int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        ::close(fd);
        ::rmdir(dir.c_str());
    }
}

void BM_CgroupCreateRemove(benchmark::State& state, bool with_limits) {
    std::string parent = bench_parent();
    if (parent.empty() || ::geteuid() != 0) {
        state.SkipWithError("needs root and a cgroup2 mount");
        return;
    }
    ::mkdir(parent.c_str(), 0755);
    auto mount = parent.substr(0, parent.rfind('/'));
    auto limits = agent_limits();
    if (with_limits) {
        auto st = delegate_controllers(mount, parent, limits.controllers());
        if (!st) {
            state.SkipWithError(st.error().describe().c_str());
            return;
        }
    }
    int n = 0;
    for (auto _ : state) {
        auto cg = SandboxCgroup::create(parent, "c" + std::to_string(n++));
        if (!cg) {
            state.SkipWithError(cg.error().describe().c_str());
            break;
        }
        if (with_limits) (void)apply_cgroup_limits(cg->dirfd(), limits);
        (void)cg->remove();
    }
    ::rmdir(parent.c_str());
}

}  // namespace

BENCHMARK(BM_DirectoryCreateRemove_Baseline);
BENCHMARK_CAPTURE(BM_CgroupCreateRemove, plain, false);
BENCHMARK_CAPTURE(BM_CgroupCreateRemove, memory_pids_cpu_limits, true);
