// libFuzzer target for the parsers of --network bridge's outside input:
// -p/--publish values (spec documents), the bridge's subnet settings (the
// environment, the daemon's flags), and netlink replies as a session reads
// them (the kernel's, but parsed by our code: acks with extended-ack TLVs,
// link and address messages). The first byte picks the parser.
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "net/bridge_config.hpp"
#include "net/nat.hpp"
#include "net/netlink.hpp"
#include "net/netlink_route.hpp"

namespace {

// Answers whatever is asked with the fuzz input as the kernel's reply,
// stamped with the request's sequence number so the session reads it.
class ReplayNetlink final : public nucleus::net::NetlinkTransport {
public:
    explicit ReplayNetlink(std::string bytes) : bytes_(std::move(bytes)) {}
    nucleus::Status send(std::span<const char> datagram) override {
        if (datagram.size() >= sizeof(nlmsghdr)) std::memcpy(&seq_, datagram.data() + offsetof(nlmsghdr, nlmsg_seq), 4);
        return {};
    }
    nucleus::Result<size_t> receive(std::span<char> buffer) override {
        if (sent_ || bytes_.empty()) return size_t{0};
        sent_ = true;
        size_t n = std::min(bytes_.size(), buffer.size());
        std::memcpy(buffer.data(), bytes_.data(), n);
        // Every message in the datagram gets our seq and port id.
        size_t at = 0;
        while (at + sizeof(nlmsghdr) <= n) {
            auto* nlh = reinterpret_cast<nlmsghdr*>(buffer.data() + at);
            nlh->nlmsg_seq = seq_;
            nlh->nlmsg_pid = 7;
            if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > n - at) break;
            at += NLMSG_ALIGN(size_t{nlh->nlmsg_len});
        }
        return n;
    }
    uint32_t port_id() const override { return 7; }

private:
    std::string bytes_;
    uint32_t seq_ = 0;
    bool sent_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    using namespace nucleus::net;
    switch (data[0] % 4) {
        case 0: {
            auto p = parse_published_port(text);
            if (p) (void)to_string(*p);
            break;
        }
        case 1: {
            auto slash = text.find(' ');
            (void)make_bridge_config("b0", text.substr(0, slash),
                                     slash == std::string::npos ? "" : text.substr(slash + 1));
            break;
        }
        case 2: {
            ReplayNetlink kernel(text);
            NetlinkSession session(kernel);
            auto replies = session.dump(rt::dump_addresses(AF_UNSPEC));
            if (replies)
                for (const auto& r : *replies) {
                    (void)rt::parse_address(r);
                    (void)rt::parse_link(r);
                }
            break;
        }
        default: {
            ReplayNetlink kernel(text);
            NetlinkSession session(kernel);
            std::vector<NetlinkMessage> one;
            one.push_back(rt::get_link("nucleus0"));
            auto replies = session.execute(one);
            if (replies)
                for (const auto& r : *replies) (void)rt::parse_link(r);
            break;
        }
    }
    return 0;
}
