// Seccomp trace mode: learn which syscalls a workload makes, without the
// kernel log. The sandbox's filter sends every syscall to a user-space
// listener (SECCOMP_RET_USER_NOTIF); the reactor receives each notification,
// records the syscall number, and lets it proceed
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE). Slow per syscall by design: it is for
// profiling a workload, and the fail-closed modes refuse it.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "io/error.hpp"

namespace nucleus::isolation {

// A filter that notifies on every syscall except write(2) on `report_fd`
// (the spawn handshake's pipe, which the child uses once after loading it).
Result<std::vector<sock_filter>> compile_trace_filter(int report_fd);

class SyscallTrace {
public:
    void add(int nr) { ++counts_[nr]; }
    const std::map<int, uint64_t>& counts() const { return counts_; }
    // Distinct syscall names, sorted.
    std::vector<std::string> names() const;
    // One JSON object per line: {"syscall": "read", "nr": 0, "count": 12}.
    Status write_ndjson(const std::string& path) const;

private:
    std::map<int, uint64_t> counts_;
};

// Answers notifications on `listener` (borrowed) until cancelled.
asio::awaitable<void> answer_notifications(int listener, SyscallTrace& trace);

// Reads a trace written by write_ndjson: the syscall names, validated
// against what libseccomp knows. Errors name the line.
Result<std::vector<std::string>> read_trace(const std::string& path);

}  // namespace nucleus::isolation
