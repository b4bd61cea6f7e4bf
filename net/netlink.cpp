#include "net/netlink.hpp"

#include <endian.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include <cstring>
#include <optional>

namespace nucleus::net {

// ---- NetlinkMessage ---------------------------------------------------------

NetlinkMessage::NetlinkMessage(uint16_t type, uint16_t flags, std::string what, bool ack)
    : buf_(new char[capacity]()), what_(std::move(what)), ack_(ack) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.get());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = static_cast<uint16_t>(flags | NLM_F_REQUEST | (ack ? NLM_F_ACK : 0));
}

// Family headers are a few bytes and come first: they always fit.
void* NetlinkMessage::put_extra(size_t len) { return mnl_nlmsg_put_extra_header(header(), len); }

void NetlinkMessage::put(uint16_t type, const void* data, size_t len) {
    if (!mnl_attr_put_check(header(), capacity, type, len, data)) overflowed_ = true;
}

void NetlinkMessage::put_be32(uint16_t type, uint32_t host_order) { put_u32(type, htobe32(host_order)); }

void NetlinkMessage::put_be64(uint16_t type, uint64_t host_order) {
    uint64_t v = htobe64(host_order);
    put(type, &v, sizeof v);
}

void NetlinkMessage::put_strz(uint16_t type, const std::string& s) { put(type, s.c_str(), s.size() + 1); }

nlattr* NetlinkMessage::begin_nest(uint16_t type) {
    nlattr* nest = mnl_attr_nest_start_check(header(), capacity, type);
    if (!nest) overflowed_ = true;
    return nest;
}

void NetlinkMessage::end_nest(nlattr* nest) {
    if (nest) mnl_attr_nest_end(header(), nest);
}

std::span<const char> NetlinkMessage::bytes() const { return {buf_.get(), header()->nlmsg_len}; }

// ---- KernelNetlink ----------------------------------------------------------

namespace {

Result<uint32_t> bind_and_name(int fd) {
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return Error::from_errno("bind netlink");
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0)
        return Error::from_errno("getsockname netlink");
    // Extended acks carry the kernel's reason as text; capped acks do not
    // echo the whole request back (netlink(7)).
    int on = 1;
    (void)::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
    (void)::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
    return addr.nl_pid;
}

}  // namespace

Result<KernelNetlink> KernelNetlink::open(int bus) {
    int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, bus);
    if (fd < 0) return Error::from_errno("opening a netlink socket");
    return adopt(io::unique_fd(fd));
}

Result<KernelNetlink> KernelNetlink::adopt(io::unique_fd fd) {
    KernelNetlink nl;
    auto port = bind_and_name(fd.get());
    if (!port) return std::move(port).error();
    nl.fd_ = std::move(fd);
    nl.port_id_ = *port;
    return nl;
}

Status KernelNetlink::send(std::span<const char> datagram) {
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    ssize_t n =
        ::sendto(fd_.get(), datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
    if (n < 0) return Error::from_errno("sending a netlink request");
    if (static_cast<size_t>(n) != datagram.size()) return Error::plain("sending a netlink request: short write");
    return {};
}

Result<size_t> KernelNetlink::receive(std::span<char> buffer) {
    while (true) {
        ssize_t n = ::recv(fd_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
        if (n >= 0) {
            if (static_cast<size_t>(n) > buffer.size())
                return Error::plain("a netlink reply was larger than its buffer");
            return static_cast<size_t>(n);
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
        return Error::from_errno("receiving a netlink reply");
    }
}

// ---- NetlinkSession ---------------------------------------------------------

namespace {

constexpr size_t receive_buffer = 64 * 1024;

// The kernel's text from an extended ack (NLMSGERR_ATTR_MSG), if any.
std::string ack_text(const nlmsghdr* nlh) {
    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    size_t offset = sizeof(nlmsgerr);
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
        if (err->msg.nlmsg_len < sizeof(nlmsghdr)) return "";
        offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
    }
    offset = MNL_ALIGN(offset);
    size_t payload = nlh->nlmsg_len - MNL_NLMSG_HDRLEN;
    if (offset >= payload) return "";
    const char* p = static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + offset;
    size_t left = payload - offset;
    while (left >= sizeof(nlattr)) {
        const auto* a = reinterpret_cast<const nlattr*>(p);
        if (a->nla_len < sizeof(nlattr) || a->nla_len > left) break;
        if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
            const char* s = static_cast<const char*>(mnl_attr_get_payload(a));
            return std::string(s, strnlen(s, a->nla_len - sizeof(nlattr)));
        }
        size_t step = MNL_ALIGN(a->nla_len);
        if (step >= left) break;
        p += step;
        left -= step;
    }
    return "";
}

// The message at `at` in a received datagram of `size` bytes, advancing
// `at`; null at the end or at a malformed header. (mnl_nlmsg_ok() compares
// nlmsg_len as an int, so a length above 2^31 would pass it.)
const nlmsghdr* next_message(const std::vector<char>& buffer, size_t size, size_t& at) {
    if (at + sizeof(nlmsghdr) > size) return nullptr;
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.data() + at);
    if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > size - at) return nullptr;
    at += MNL_ALIGN(nlh->nlmsg_len);
    return nlh;
}

// Outstanding requests of one exchange, by sequence number.
struct Pending {
    uint32_t first_seq = 0;
    std::vector<const NetlinkMessage*> messages;
    std::vector<bool> answered;
    size_t waiting = 0;
    bool dump = false;
    bool done = false;  // a dump's NLMSG_DONE
    std::optional<Error> error;

    const NetlinkMessage* message(uint32_t seq) const {
        if (seq < first_seq || seq - first_seq >= messages.size()) return nullptr;
        return messages[seq - first_seq];
    }
    bool complete() const { return dump ? done || error : waiting == 0; }
};

// Accounts one reply message; data replies of ours are appended to `out`.
void account(const nlmsghdr* nlh, Pending& p, std::vector<NetlinkReply>& out) {
    const NetlinkMessage* request = p.message(nlh->nlmsg_seq);
    if (!request) return;  // a stale reply to an earlier exchange
    size_t index = nlh->nlmsg_seq - p.first_seq;
    if (nlh->nlmsg_type == NLMSG_DONE) {
        p.done = true;
        return;
    }
    if (nlh->nlmsg_type != NLMSG_ERROR) {
        const char* b = reinterpret_cast<const char*>(nlh);
        out.push_back(NetlinkReply{std::vector<char>(b, b + nlh->nlmsg_len)});
        return;
    }
    if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + sizeof(nlmsgerr)) {
        if (!p.error) p.error = Error::plain(request->what() + ": truncated netlink error");
        return;
    }
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    if (err->error != 0 && !p.error) {
        std::string text = ack_text(nlh);
        // The kernel sends -errno; anything else is a malformed reply.
        int code = err->error < 0 && err->error > -4096 ? -err->error : EPROTO;
        p.error = Error{code, request->what() + (text.empty() ? "" : " (" + text + ")")};
    }
    if (!p.answered[index]) {
        p.answered[index] = true;
        if (request->wants_ack()) --p.waiting;
    }
}

Result<std::vector<NetlinkReply>> exchange(NetlinkTransport& transport, uint32_t& next_seq,
                                           std::span<NetlinkMessage> messages, bool dump) {
    Pending p;
    p.first_seq = next_seq;
    p.dump = dump;
    std::vector<char> datagram;
    for (auto& m : messages) {
        if (m.overflowed()) return Error::plain(m.what() + ": the netlink request does not fit its buffer");
        m.header()->nlmsg_seq = next_seq++;
        m.header()->nlmsg_pid = 0;
        auto bytes = m.bytes();
        datagram.insert(datagram.end(), bytes.begin(), bytes.end());
        datagram.resize(MNL_ALIGN(datagram.size()));
        p.messages.push_back(&m);
        p.answered.push_back(false);
        if (m.wants_ack()) ++p.waiting;
    }
    if (auto st = transport.send(datagram); !st)
        return std::move(st).error().wrap(messages.empty() ? "netlink" : messages[0].what());
    std::vector<NetlinkReply> out;
    std::vector<char> buffer(receive_buffer);
    while (!p.complete()) {
        auto n = transport.receive(buffer);
        if (!n) return std::move(n).error();
        if (*n == 0) break;  // nothing more queued: see the header comment
        size_t at = 0;
        while (const nlmsghdr* nlh = next_message(buffer, *n, at)) {
            if (nlh->nlmsg_pid != transport.port_id() && nlh->nlmsg_pid != 0) continue;
            account(nlh, p, out);
        }
    }
    if (p.error) return std::move(*p.error);
    if (!p.complete()) {
        const std::string what = messages.empty() ? "netlink" : messages[0].what();
        return Error::plain(what + ": the kernel did not answer every request");
    }
    return out;
}

}  // namespace

Result<std::vector<NetlinkReply>> NetlinkSession::execute(std::span<NetlinkMessage> messages) {
    return exchange(transport_, next_seq_, messages, false);
}

Status NetlinkSession::execute(NetlinkMessage message) {
    auto replies = exchange(transport_, next_seq_, std::span<NetlinkMessage>(&message, 1), false);
    if (!replies) return std::move(replies).error();
    return {};
}

Result<std::vector<NetlinkReply>> NetlinkSession::dump(NetlinkMessage request) {
    request.header()->nlmsg_flags |= NLM_F_DUMP;
    return exchange(transport_, next_seq_, std::span<NetlinkMessage>(&request, 1), true);
}

}  // namespace nucleus::net
