// What installing the default seccomp filter costs a new sandbox. A forked
// child sets no_new_privs and installs the filter; only the seccomp(2) call
// is timed (in the child, handed back through shared memory), so fork and
// exit do not drown it. Baseline, measured in the same run: a one-instruction
// "allow everything" filter, the fixed cost of any install.
//
// The kernel runs a new filter once per syscall number at install time to
// fill its action cache, so the layout of the dispatch matters: compare the
// binary tree nucleus ships with libseccomp's linear chain.
#include <benchmark/benchmark.h>

#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "isolation/seccomp.hpp"

using namespace nucleus;

namespace {

void install_in_children(benchmark::State& state, std::vector<sock_filter> filter) {
    void* page = ::mmap(nullptr, sizeof(double), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        state.SkipWithError("mmap failed");
        return;
    }
    auto* seconds = static_cast<volatile double*>(page);
    sock_fprog program{static_cast<unsigned short>(filter.size()), filter.data()};
    for (auto _ : state) {
        pid_t pid = ::fork();
        if (pid < 0) {
            state.SkipWithError("fork failed");
            break;
        }
        if (pid == 0) {
            if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(1);
            auto start = std::chrono::steady_clock::now();
            if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) ::_exit(1);
            *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            ::_exit(0);
        }
        int status = 0;
        if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            state.SkipWithError("the child could not install the filter");
            break;
        }
        state.SetIterationTime(*seconds);
    }
    state.counters["instructions"] = static_cast<double>(filter.size());
    ::munmap(page, sizeof(double));
}

void BM_SeccompInstall_Baseline_AllowAll(benchmark::State& state) {
    install_in_children(state, {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)});
}

void BM_SeccompInstall_Default(benchmark::State& state, isolation::SeccompLayout layout) {
    auto compiled = isolation::compile_seccomp(isolation::default_seccomp_policy(), layout);
    if (!compiled) {
        state.SkipWithError(compiled.error().describe().c_str());
        return;
    }
    install_in_children(state, std::move(*compiled));
}

}  // namespace

BENCHMARK(BM_SeccompInstall_Baseline_AllowAll)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SeccompInstall_Default, binary_tree, isolation::SeccompLayout::BinaryTree)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SeccompInstall_Default, linear, isolation::SeccompLayout::Linear)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
