#include "io/unique_fd.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace nucleus::io {

void unique_fd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);  // close(2): the fd is released even on EINTR
    fd_ = fd;
}

Result<unique_fd> open_fd(const std::string& path, int flags, int mode) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) return Error::from_errno("open " + path);
    return unique_fd(fd);
}

Result<unique_fd> open_at(int dirfd, const std::string& path, int flags, int mode) {
    int fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) return Error::from_errno("open " + path);
    return unique_fd(fd);
}

Result<PipePair> make_pipe(int extra_flags) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | extra_flags) < 0) return Error::from_errno("pipe2");
    return PipePair{unique_fd(fds[0]), unique_fd(fds[1])};
}

Result<unique_fd> dup_fd(int fd) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) return Error::from_errno("dup fd " + std::to_string(fd));
    return unique_fd(copy);
}

static Result<std::string> read_all(int fd, const std::string& path, size_t max_bytes) {
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("read " + path);
        }
        if (n == 0) break;
        if (out.size() + static_cast<size_t>(n) > max_bytes)
            return Error::plain("read " + path + ": larger than " + std::to_string(max_bytes) + " bytes");
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
    return read_file_at(AT_FDCWD, path, max_bytes);
}

Result<std::string> read_file_at(int dirfd, const std::string& path, size_t max_bytes) {
    auto fd = open_at(dirfd, path, O_RDONLY | O_NOCTTY);
    if (!fd) return std::move(fd).error();
    return read_all(fd->get(), path, max_bytes);
}

Status write_all(int fd, std::string_view content) {
    while (!content.empty()) {
        ssize_t n = ::write(fd, content.data(), content.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("write");
        }
        content.remove_prefix(static_cast<size_t>(n));
    }
    return {};
}

Status write_file(const std::string& path, std::string_view content) { return write_file_at(AT_FDCWD, path, content); }

Status write_file_at(int dirfd, const std::string& path, std::string_view content) {
    auto fd = open_at(dirfd, path, O_WRONLY | O_NOCTTY);
    if (!fd) return std::move(fd).error();
    // Control files (uid_map, cgroup.kill) take one write(2); a short write
    // there is an error, so no loop.
    ssize_t n = ::write(fd->get(), content.data(), content.size());
    if (n < 0) return Error::from_errno("write " + path);
    if (static_cast<size_t>(n) != content.size()) return Error::plain("write " + path + ": short write");
    return {};
}

}  // namespace nucleus::io
