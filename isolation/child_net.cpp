// The child's network step (see child_net.hpp). Same rules as child.cpp:
// raw syscalls only, no allocation, noexcept, built without sanitizers.
#include "isolation/child_net.hpp"

#include <cerrno>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "isolation/raw_syscall.hpp"

namespace nucleus::isolation {

namespace {

using raw::call;

constexpr int sol_netlink = 270;  // SOL_NETLINK
constexpr int netlink_cap_ack = 10;  // NETLINK_CAP_ACK: errors echo only the header

constexpr uint16_t big_endian16(uint16_t v) { return static_cast<uint16_t>(v << 8 | v >> 8); }

// Sends one script and reads acknowledgements until every NLM_F_ACK'd
// message is answered; the first error is the result (a failed nftables
// batch is aborted whole by the kernel).
long send_script(const NetlinkScript& script) noexcept {
    long fd = call(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, script.protocol);
    if (fd < 0) return fd;
    int one = 1;
    call(SYS_setsockopt, fd, sol_netlink, netlink_cap_ack, &one, sizeof one);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    long rc = call(SYS_sendto, fd, script.bytes, script.length, 0, &kernel, sizeof kernel);
    if (rc >= 0 && static_cast<size_t>(rc) != script.length) rc = -EMSGSIZE;
    unsigned acked = 0;
    alignas(nlmsghdr) char buf[8192];
    while (rc >= 0 && acked < script.acks) {
        long n = call(SYS_recvfrom, fd, buf, sizeof buf, 0, nullptr, nullptr);
        if (n == -EINTR) continue;
        if (n <= 0) {
            rc = n < 0 ? n : -EPIPE;
            break;
        }
        int len = static_cast<int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type != NLMSG_ERROR) continue;
            auto* err = static_cast<nlmsgerr*>(NLMSG_DATA(h));
            if (err->error != 0) {
                rc = err->error;
                break;
            }
            ++acked;
        }
    }
    call(SYS_close, fd);
    return rc < 0 ? rc : 0;
}

long make_socket(const ListenSocket& spec) noexcept {
    long fd = call(SYS_socket, spec.family, spec.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return fd;
    int one = 1;
    long rc = 0;
    // TCP: a listener re-created after a daemon restart must bind while the
    // old connections sit in TIME_WAIT; a second listener is still refused.
    if (spec.type == SOCK_STREAM) rc = call(SYS_setsockopt, fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (rc == 0 && spec.family == AF_INET) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = big_endian16(spec.port);
        auto* octets = reinterpret_cast<uint8_t*>(&a.sin_addr);
        octets[0] = 127;
        octets[3] = 1;
        rc = call(SYS_bind, fd, &a, sizeof a);
    } else if (rc == 0) {
        rc = call(SYS_setsockopt, fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        a.sin6_port = big_endian16(spec.port);
        a.sin6_addr.s6_addr[15] = 1;  // ::1
        if (rc == 0) rc = call(SYS_bind, fd, &a, sizeof a);
    }
    if (rc == 0 && spec.type == SOCK_STREAM) rc = call(SYS_listen, fd, 4096);
    if (rc < 0) {
        call(SYS_close, fd);
        return rc;
    }
    return fd;
}

long send_sockets(int channel, const int* fds, size_t count) noexcept {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_listen_sockets)] = {};
    char count_byte = static_cast<char>(count);
    iovec iov{&count_byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * count);
    auto* out = reinterpret_cast<int*>(CMSG_DATA(cm));
    for (size_t i = 0; i < count; ++i) out[i] = fds[i];
    long rc;
    do {
        rc = call(SYS_sendmsg, channel, &msg, MSG_NOSIGNAL);
    } while (rc == -EINTR);
    return rc < 0 ? rc : 0;
}

}  // namespace

long setup_child_network(const ChildNetwork& network, const char** detail) noexcept {
    for (size_t i = 0; i < network.script_count; ++i) {
        long rc = send_script(network.scripts[i]);
        if (rc < 0) {
            *detail = network.scripts[i].protocol == NETLINK_ROUTE ? "routes" : "nftables rules";
            return rc;
        }
    }
    if (network.socket_count == 0) return 0;
    if (network.socket_count > max_listen_sockets) return -E2BIG;
    int fds[max_listen_sockets];
    size_t made = 0;
    long rc = 0;
    for (; made < network.socket_count; ++made) {
        rc = make_socket(network.sockets[made]);
        if (rc < 0) {
            *detail = "listening sockets";
            break;
        }
        fds[made] = static_cast<int>(rc);
    }
    if (rc >= 0) {
        rc = send_sockets(network.channel_fd, fds, made);
        if (rc < 0) *detail = "passing the listening sockets to the supervisor";
    }
    for (size_t i = 0; i < made; ++i) call(SYS_close, fds[i]);
    return rc < 0 ? rc : 0;
}

}  // namespace nucleus::isolation
