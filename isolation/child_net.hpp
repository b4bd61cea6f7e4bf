// The child's network step: configure its own network namespace from
// prepared netlink messages, and make listening sockets in it for the
// parent to serve.
//
// Runs in the child (CLONE_VM, raw syscalls only; see isolation/child.cpp's
// rules) after lo is up and while the child still holds every capability
// in its user namespace, which owns the new network namespace: so it works
// for unprivileged callers, who cannot setns(2) into that namespace
// themselves. The parent builds everything beforehand (prepare in the
// parent, apply in the child):
//   1. each NetlinkScript is sent on a fresh netlink socket of its protocol,
//      and every NLM_F_ACK'd message must be acknowledged without error;
//   2. each ListenSocket is created, bound on its family's loopback address
//      and (for TCP) put in listening state;
//   3. all of them travel to the parent in one SCM_RIGHTS message on
//      `channel_fd`, one end of a socketpair the parent keeps the other end
//      of. The message sits in the socket's queue until the parent reads
//      it after Ready, so the child's copies may close at the CloseFds step
//      like any other descriptor, and the parent needs no ptrace access to
//      the child (pidfd_getfd(2) would: PTRACE_MODE_ATTACH).
#pragma once

#include <cstddef>
#include <cstdint>

namespace nucleus::isolation {

struct NetlinkScript {
    int protocol = 0;  // NETLINK_ROUTE, NETLINK_NETFILTER
    const uint8_t* bytes = nullptr;  // one or more nlmsghdr messages (a batch)
    size_t length = 0;
    unsigned acks = 0;  // messages carrying NLM_F_ACK
};

struct ListenSocket {
    int family = 0;  // AF_INET (127.0.0.1) or AF_INET6 (::1, IPV6_V6ONLY)
    int type = 0;  // SOCK_STREAM (listens) or SOCK_DGRAM
    uint16_t port = 0;
};

constexpr size_t max_listen_sockets = 8;

struct ChildNetwork {
    const NetlinkScript* scripts = nullptr;
    size_t script_count = 0;
    const ListenSocket* sockets = nullptr;
    size_t socket_count = 0;  // at most max_listen_sockets
    int channel_fd = -1;  // SOCK_SEQPACKET end the sockets are sent on
};

// 0 or -errno; `detail` names what failed (static text).
long setup_child_network(const ChildNetwork& network, const char** detail) noexcept;

}  // namespace nucleus::isolation
