#include "io/reactor.hpp"

#include <liburing.h>

#include <string>

#include <asio/detail/io_uring_service.hpp>
#include <asio/system_error.hpp>

#include "io/unique_fd.hpp"

namespace nucleus::io {

namespace {

unsigned configured_ring_entries = 256;

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

// "Seccomp:\t2" in /proc/self/status means a filter is loaded on us.
bool under_seccomp_filter() {
    auto status = read_file("/proc/self/status");
    if (!status) return false;
    return status->find("\nSeccomp:\t2") != std::string::npos;
}

Status io_uring_unavailable(int err) {
    std::string cause;
    if (auto disabled = read_file("/proc/sys/kernel/io_uring_disabled"); disabled) {
        std::string v = trimmed(*disabled);
        if (v == "2") cause = "kernel.io_uring_disabled=2 forbids io_uring for every process";
        else if (v == "1")
            cause = "kernel.io_uring_disabled=1 allows io_uring only for members of kernel.io_uring_group";
    }
    if (cause.empty() && (err == EPERM || err == EACCES || err == ENOSYS) && under_seccomp_filter())
        cause = "a seccomp filter on this process (e.g. a container runtime's default profile) refuses io_uring_setup";
    if (cause.empty() && err == ENOSYS) cause = "the kernel was built without io_uring";
    if (cause.empty()) cause = "io_uring_setup failed";
    return Error::from_errno("io_uring is unavailable: " + cause, err);
}

}  // namespace

void set_ring_entries(unsigned entries) { configured_ring_entries = entries < 2 ? 2 : entries; }
unsigned ring_entries() { return configured_ring_entries; }

Status check_io_uring() {
    io_uring ring;
    int rc = io_uring_queue_init(2, &ring, 0);  // returns -errno
    if (rc == 0) {
        io_uring_queue_exit(&ring);
        return {};
    }
    return io_uring_unavailable(-rc);
}

Status start_io_uring(asio::io_context& reactor) {
    // Asio makes its ring in this service's constructor and throws when
    // io_uring_queue_init fails: the exception stops here.
    try {
        (void)asio::use_service<asio::detail::io_uring_service>(reactor);
    } catch (const asio::system_error& e) {
        return io_uring_unavailable(e.code().value());
    }
    return {};
}

}  // namespace nucleus::io

extern "C" {
int __real_io_uring_queue_init(unsigned entries, io_uring* ring, unsigned flags);
int __wrap_io_uring_queue_init(unsigned entries, io_uring* ring, unsigned flags) {
    unsigned cap = nucleus::io::ring_entries();
    return __real_io_uring_queue_init(entries > cap ? cap : entries, ring, flags);
}
}
