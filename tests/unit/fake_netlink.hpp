// A netlink transport for unit tests: records every request message sent
// and answers each one as a script says (an ack, an error, data replies, a
// dump), as the kernel would within sendmsg(2). No root, no sockets.
#pragma once

#include <linux/netlink.h>

#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include <libmnl/libmnl.h>

#include "net/netlink.hpp"

namespace nucleus::tests {

// One request as sent (a copy of its bytes).
struct SentMessage {
    std::vector<char> bytes;
    const nlmsghdr* header() const { return reinterpret_cast<const nlmsghdr*>(bytes.data()); }
    uint16_t type() const { return header()->nlmsg_type; }
    uint16_t flags() const { return header()->nlmsg_flags; }
};

// What the fake kernel answers to one request.
struct Answer {
    int error = 0;  // the ack's error (a positive errno), if any ack is sent
    bool ack = true;  // send an ack (always when error != 0)
    std::vector<std::vector<char>> data;  // data messages before the ack (a GET's answer, a dump's parts)
    bool done = false;  // end with NLMSG_DONE (dumps)
    std::string ext_ack;  // NLMSGERR_ATTR_MSG text
};

class FakeNetlink final : public net::NetlinkTransport {
public:
    // Decides the answer for each request; default: an ack with no error
    // for requests that asked for one, NLMSG_DONE for dumps.
    std::function<Answer(const SentMessage&)> script;
    std::vector<std::vector<SentMessage>> datagrams;  // per send(), its messages

    std::vector<SentMessage> all() const {
        std::vector<SentMessage> out;
        for (const auto& d : datagrams) out.insert(out.end(), d.begin(), d.end());
        return out;
    }

    Status send(std::span<const char> datagram) override {
        std::vector<SentMessage> messages;
        int len = static_cast<int>(datagram.size());
        for (auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data()); mnl_nlmsg_ok(nlh, len);
             nlh = mnl_nlmsg_next(nlh, &len)) {
            const char* b = reinterpret_cast<const char*>(nlh);
            messages.push_back(SentMessage{std::vector<char>(b, b + nlh->nlmsg_len)});
        }
        for (const auto& m : messages) answer(m);
        datagrams.push_back(std::move(messages));
        return {};
    }

    Result<size_t> receive(std::span<char> buffer) override {
        if (queue_.empty()) return size_t{0};
        auto reply = std::move(queue_.front());
        queue_.pop_front();
        if (reply.size() > buffer.size()) return Error::plain("fake netlink: reply larger than the buffer");
        std::memcpy(buffer.data(), reply.data(), reply.size());
        return reply.size();
    }

    uint32_t port_id() const override { return 4242; }

    // A data message of `type` carrying `payload` (a family header and
    // attributes), for scripts.
    static std::vector<char> message(uint16_t type, const void* payload, size_t len, uint16_t flags = 0) {
        std::vector<char> out(MNL_ALIGN(sizeof(nlmsghdr) + len));
        auto* nlh = reinterpret_cast<nlmsghdr*>(out.data());
        nlh->nlmsg_len = static_cast<uint32_t>(sizeof(nlmsghdr) + len);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = flags;
        std::memcpy(out.data() + sizeof(nlmsghdr), payload, len);
        return out;
    }

    // Makes every queued reply carry this sequence number (stale replies).
    void queue_raw(std::vector<char> bytes) { queue_.push_back(std::move(bytes)); }

    // NLM_F_DUMP is two bits (ROOT | MATCH); NLM_F_EXCL reuses MATCH's.
    static bool is_dump(const SentMessage& m) { return (m.flags() & NLM_F_DUMP) == NLM_F_DUMP; }

private:
    void answer(const SentMessage& m) {
        Answer a;
        if (script) a = script(m);
        else if (is_dump(m)) a.done = true, a.ack = false;
        for (auto d : a.data) {
            auto* nlh = reinterpret_cast<nlmsghdr*>(d.data());
            nlh->nlmsg_seq = m.header()->nlmsg_seq;
            nlh->nlmsg_pid = port_id();
            queue_.push_back(std::move(d));
        }
        if (a.done) {
            nlmsghdr done{};
            done.nlmsg_len = sizeof done + sizeof(int);
            done.nlmsg_type = NLMSG_DONE;
            done.nlmsg_flags = NLM_F_MULTI;
            done.nlmsg_seq = m.header()->nlmsg_seq;
            done.nlmsg_pid = port_id();
            std::vector<char> bytes(done.nlmsg_len);
            std::memcpy(bytes.data(), &done, sizeof done);
            queue_.push_back(std::move(bytes));
        }
        bool wants_ack = (m.flags() & NLM_F_ACK) && !is_dump(m);
        if (a.error != 0 || (a.ack && wants_ack)) queue_.push_back(ack(m, a.error, a.ext_ack));
    }

    // NLMSG_ERROR, capped (only the request's header echoed), with an
    // extended-ack message when given.
    std::vector<char> ack(const SentMessage& m, int error, const std::string& text) {
        size_t tlv = text.empty() ? 0 : MNL_ALIGN(sizeof(nlattr) + text.size() + 1);
        size_t len = sizeof(nlmsghdr) + sizeof(nlmsgerr) + tlv;
        std::vector<char> out(MNL_ALIGN(len));
        auto* nlh = reinterpret_cast<nlmsghdr*>(out.data());
        nlh->nlmsg_len = static_cast<uint32_t>(len);
        nlh->nlmsg_type = NLMSG_ERROR;
        nlh->nlmsg_flags = NLM_F_CAPPED | (tlv ? NLM_F_ACK_TLVS : 0);
        nlh->nlmsg_seq = m.header()->nlmsg_seq;
        nlh->nlmsg_pid = port_id();
        auto* err = reinterpret_cast<nlmsgerr*>(out.data() + sizeof(nlmsghdr));
        err->error = -error;
        err->msg = *m.header();
        if (tlv) {
            auto* a = reinterpret_cast<nlattr*>(out.data() + sizeof(nlmsghdr) + sizeof(nlmsgerr));
            a->nla_len = static_cast<uint16_t>(sizeof(nlattr) + text.size() + 1);
            a->nla_type = NLMSGERR_ATTR_MSG;
            std::memcpy(reinterpret_cast<char*>(a) + sizeof(nlattr), text.c_str(), text.size() + 1);
        }
        return out;
    }

    std::deque<std::vector<char>> queue_;
};

// Attributes of a sent message after its family header, by type.
inline std::vector<const nlattr*> attributes(const nlmsghdr* nlh, size_t header_len) {
    std::vector<const nlattr*> out;
    const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    for (auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, header_len));
         mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a))
        out.push_back(a);
    return out;
}

inline std::vector<const nlattr*> nested(const nlattr* parent, size_t skip = 0) {
    std::vector<const nlattr*> out;
    const char* end = reinterpret_cast<const char*>(parent) + parent->nla_len;
    auto* a = reinterpret_cast<const nlattr*>(static_cast<const char*>(mnl_attr_get_payload(parent)) + MNL_ALIGN(skip));
    for (; mnl_attr_ok(a, static_cast<int>(end - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a))
        out.push_back(a);
    return out;
}

inline const nlattr* find(const std::vector<const nlattr*>& attrs, uint16_t type) {
    for (auto* a : attrs)
        if (mnl_attr_get_type(a) == type) return a;
    return nullptr;
}

inline std::string attr_str(const nlattr* a) {
    return std::string(static_cast<const char*>(mnl_attr_get_payload(a)),
                       strnlen(static_cast<const char*>(mnl_attr_get_payload(a)), mnl_attr_get_payload_len(a)));
}

}  // namespace nucleus::tests
