// libFuzzer target for the egress parsers that read hostile input: allow
// rules (flags, documents, --allow-from-file), DNS messages (queries from
// the sandbox, answers from the network), the stub's answers, the first
// bytes of a captured connection (TLS ClientHello, HTTP) and HttpGuard.
// The first byte picks the parser. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string>

#include "net/dns_message.hpp"
#include "net/dns_stub.hpp"
#include "net/egress_policy.hpp"
#include "net/first_bytes.hpp"
#include "net/http_guard.hpp"

using namespace nucleus::net;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::span<const uint8_t> wire(data + 1, size - 1);
    switch (data[0] % 6) {
        case 0: {
            EgressPolicy policy;
            if (parse_rule_file(text, "fuzz.txt", policy)) {
                for (const auto& d : policy.domains) (void)policy.check_name(d.name, 443);
                for (const auto& c : policy.cidrs) (void)policy.check_address(c.cidr.network, 443);
                (void)policy.describe();
            }
            break;
        }
        case 1:
            (void)parse_domain_rule(text);
            (void)parse_cidr_rule(text);
            (void)canonical_name(text);
            break;
        case 2: {
            auto m = dns::parse(wire);
            if (m)
                for (const auto& q : m->questions) (void)dns::encode_name(q.name);
            break;
        }
        case 3: {
            EgressPolicy policy;
            policy.domains.push_back(parse_domain_rule("*.test").value());
            SyntheticPool pool(8);
            auto answer = answer_stub_query(wire, policy, pool);
            if (!answer.response.empty()) (void)dns::parse(answer.response);
            break;
        }
        case 4:
            (void)inspect_first_bytes(wire);
            break;
        default: {
            // Split in two at a point the input picks: the guard sees a stream.
            HttpGuard guard("allowed.test", 80);
            size_t cut = wire.empty() ? 0 : wire[0] % wire.size();
            if (guard.accept(wire.subspan(0, cut))) (void)guard.accept(wire.subspan(cut));
            break;
        }
    }
    return 0;
}
