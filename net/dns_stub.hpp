// The egress sandbox's DNS stub: answers only names the policy allows, with
// synthetic addresses, and never sends anything upstream.
//
// A sandbox's resolver is pointed at 127.0.0.1:53 (generated resolv.conf),
// and the namespace's rules redirect every UDP query to port 53 of any
// address here too. For an allowed name the answer is a synthetic address
// from the sandbox's own pool (198.18.0.0/15, the benchmarking range, and
// a ULA /64), which the capture socket maps back to the name when the
// sandbox connects to it; the runtime resolves the real name only then,
// itself. A denied name gets NXDOMAIN at once: glibc gives up on NXDOMAIN
// but retries other servers and waits on REFUSED or SERVFAIL. Other record
// types of an allowed name get an empty NOERROR answer (no TXT, NULL or
// HTTPS data ever leaves or enters through the stub).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "net/egress_policy.hpp"
#include "net/ip_address.hpp"

namespace nucleus::net {

// Names -> synthetic addresses, per sandbox. Bounded: once `capacity` names
// have been given addresses, the oldest slot is reused, so a sandbox that
// asks for endless names under a wildcard cannot grow the supervisor. A
// connection to a reused address maps to the slot's new name, which the
// policy checks like any other (and the SNI/Host check still applies).
class SyntheticPool {
public:
    explicit SyntheticPool(size_t capacity = 4096);

    struct Addresses {
        IpAddress v4;
        IpAddress v6;
    };
    Addresses assign(const std::string& name);
    std::optional<std::string> name_of(const IpAddress& address) const;

    static const Cidr& v4_range();  // 198.18.0.0/15
    static const Cidr& v6_range();  // fd6e:7563:6c65:7573::/64

private:
    Addresses addresses_of(size_t slot) const;

    size_t capacity_;
    size_t next_ = 0;
    std::vector<std::string> slots_;
    std::map<std::string, size_t> by_name_;
};

// TTL of synthetic answers: short, so a name's address is looked up again
// soon after its slot could have been reused.
constexpr uint32_t synthetic_ttl = 10;

struct StubAnswer {
    std::vector<uint8_t> response;  // empty: send nothing (not a query at all)
    bool has_question = false;
    std::string name;  // presentation form as asked
    uint16_t type = 0;
    bool allowed = false;
    std::string reason;  // for denied questions
};

// One query (a UDP datagram's payload, or one TCP-framed message) -> the
// response to send. Pure, apart from assigning synthetic addresses.
StubAnswer answer_stub_query(std::span<const uint8_t> query, const EgressPolicy& policy, SyntheticPool& pool);

// The generated /etc/resolv.conf of an egress sandbox.
std::string egress_resolv_conf();

}  // namespace nucleus::net
