// Netlink requests to the kernel, built and parsed with libmnl: rtnetlink
// (links, addresses, routes; net/netlink_route.hpp) and nfnetlink batches
// (nftables; net/nat.hpp).
//
// The kernel handles a request inside sendmsg(2): when it returns, every
// reply (acks, errors, the first part of a dump) is already queued on the
// socket, and each recvmsg(2) of a dump queues the next part before it
// returns (netlink_recvmsg -> netlink_dump). So a session reads with
// MSG_DONTWAIT and never waits for the kernel: nothing here needs a reactor
// wait, and a missing reply is an error rather than a reason to block. (The
// kernel may sleep on rtnl_mutex inside sendmsg, as it may inside mkdir(2)
// of a cgroup; that is a syscall, not a wait for an event.)
//
// Requests go through a NetlinkTransport: the kernel's (a netlink socket,
// possibly created inside another network namespace), or a test double that
// records what was sent and scripts the answers, so that the message logic
// is unit-tested without root.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/error.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::net {

// One request under construction. Attributes that would not fit are
// refused (the message is then marked overflowed and never sent).
class NetlinkMessage {
public:
    static constexpr size_t capacity = 8192;

    // type/flags of the nlmsghdr; NLM_F_REQUEST is always added, NLM_F_ACK
    // unless `ack` is false (nfnetlink's batch delimiters take none).
    NetlinkMessage(uint16_t type, uint16_t flags, std::string what, bool ack = true);
    NetlinkMessage(NetlinkMessage&&) noexcept = default;
    NetlinkMessage& operator=(NetlinkMessage&&) noexcept = default;

    nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.get()); }
    const nlmsghdr* header() const { return reinterpret_cast<const nlmsghdr*>(buf_.get()); }
    // The family header after the nlmsghdr (ifinfomsg, ifaddrmsg, rtmsg,
    // nfgenmsg), zeroed. Call once, before any attribute.
    template <class T>
    T& family_header() {
        return *static_cast<T*>(put_extra(sizeof(T)));
    }

    void put(uint16_t type, const void* data, size_t len);
    void put_u8(uint16_t type, uint8_t v) { put(type, &v, sizeof v); }
    void put_u16(uint16_t type, uint16_t v) { put(type, &v, sizeof v); }
    void put_u32(uint16_t type, uint32_t v) { put(type, &v, sizeof v); }
    void put_be32(uint16_t type, uint32_t host_order);
    void put_be64(uint16_t type, uint64_t host_order);
    void put_strz(uint16_t type, const std::string& s);  // with its NUL
    // Nested attributes: begin_nest returns a handle for end_nest.
    nlattr* begin_nest(uint16_t type);
    void end_nest(nlattr* nest);

    // For libnftnl's builders, which write a header and attributes into a
    // buffer of MNL_SOCKET_BUFFER_SIZE bytes themselves.
    char* raw_buffer() { return buf_.get(); }

    bool overflowed() const { return overflowed_; }
    bool wants_ack() const { return ack_; }
    const std::string& what() const { return what_; }
    std::span<const char> bytes() const;

private:
    void* put_extra(size_t len);

    std::unique_ptr<char[]> buf_;
    std::string what_;
    bool ack_ = true;
    bool overflowed_ = false;
};

// One received netlink message (a copy), e.g. an RTM_NEWLINK of a dump.
struct NetlinkReply {
    std::vector<char> bytes;
    const nlmsghdr* header() const { return reinterpret_cast<const nlmsghdr*>(bytes.data()); }
};

class NetlinkTransport {
public:
    virtual ~NetlinkTransport() = default;
    // One datagram to the kernel.
    virtual Status send(std::span<const char> datagram) = 0;
    // One queued datagram into `buffer`: its length, or 0 if nothing is
    // queued (EAGAIN).
    virtual Result<size_t> receive(std::span<char> buffer) = 0;
    // Our port id, which the kernel puts in every reply.
    virtual uint32_t port_id() const = 0;
};

// A netlink socket (SOCK_CLOEXEC | SOCK_NONBLOCK) with extended acks.
class KernelNetlink final : public NetlinkTransport {
public:
    // `bus`: NETLINK_ROUTE or NETLINK_NETFILTER, in our network namespace.
    static Result<KernelNetlink> open(int bus);
    // A socket created elsewhere (inside a sandbox's network namespace: a
    // socket keeps the namespace it was created in).
    static Result<KernelNetlink> adopt(io::unique_fd fd);

    Status send(std::span<const char> datagram) override;
    Result<size_t> receive(std::span<char> buffer) override;
    uint32_t port_id() const override { return port_id_; }

private:
    io::unique_fd fd_;
    uint32_t port_id_ = 0;
};

// Sequencing and reply checking over a transport.
class NetlinkSession {
public:
    explicit NetlinkSession(NetlinkTransport& transport) : transport_(transport) {}

    // Sends `messages` in one datagram (for nfnetlink, one transaction) and
    // checks that every message that asked for an ack got one. The first
    // error fails, described by that message's what() and the kernel's
    // extended ack text. Data replies are returned (a GET's answer).
    Result<std::vector<NetlinkReply>> execute(std::span<NetlinkMessage> messages);
    Status execute(NetlinkMessage message);
    // A dump request (NLM_F_DUMP added): every message until NLMSG_DONE.
    Result<std::vector<NetlinkReply>> dump(NetlinkMessage request);

private:
    NetlinkTransport& transport_;
    uint32_t next_seq_ = 1;
};

}  // namespace nucleus::net
