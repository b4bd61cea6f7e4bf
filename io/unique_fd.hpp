// A move-only owned file descriptor, closed by its destructor.
//
// Every syscall wrapper in Nucleus that makes a descriptor returns one of
// these, opened with O_CLOEXEC: nothing leaks into a sandbox by accident.
// A raw int fd that crosses a function boundary says in a comment who closes it.
#pragma once

#include <string>

#include "io/error.hpp"

namespace nucleus::io {

class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }
    // Gives up ownership; the caller closes the returned fd.
    [[nodiscard]] int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1) noexcept;

private:
    int fd_ = -1;
};

struct PipePair {
    unique_fd read;
    unique_fd write;
};

// open(2) with O_CLOEXEC added.
Result<unique_fd> open_fd(const std::string& path, int flags, int mode = 0);
// openat(2) with O_CLOEXEC added.
Result<unique_fd> open_at(int dirfd, const std::string& path, int flags, int mode = 0);
// pipe2(2) with O_CLOEXEC added.
Result<PipePair> make_pipe(int extra_flags = 0);
// dup(2) as an owned CLOEXEC fd (F_DUPFD_CLOEXEC).
Result<unique_fd> dup_fd(int fd);

// Reads a whole (small) file: procfs, sysfs, cgroupfs, config files.
// Bounded by max_bytes so an untrusted file cannot grow our memory.
Result<std::string> read_file(const std::string& path, size_t max_bytes = 1 << 20);
Result<std::string> read_file_at(int dirfd, const std::string& path, size_t max_bytes = 1 << 20);
// Writes a whole buffer to an existing file (O_WRONLY, no create): control
// files such as uid_map, cgroup.kill.
Status write_file(const std::string& path, std::string_view content);
Status write_file_at(int dirfd, const std::string& path, std::string_view content);
// write(2) until done or an error other than EINTR.
Status write_all(int fd, std::string_view content);

}  // namespace nucleus::io
