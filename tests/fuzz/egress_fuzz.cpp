// libFuzzer target for the egress parsers that read hostile input: allow
// rules (flags, documents, --allow-from-file), DNS messages (queries from
// the sandbox, answers from the network) and the stub's answers to them.
// The first byte picks the parser. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string>

#include "net/dns_message.hpp"
#include "net/egress_policy.hpp"

using namespace nucleus::net;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::span<const uint8_t> wire(data + 1, size - 1);
    switch (data[0] % 4) {
        case 0: {
            EgressPolicy policy;
            if (parse_rule_file(text, "fuzz.txt", policy)) {
                for (const auto& d : policy.domains) (void)policy.check_name(d.name, 443);
                for (const auto& c : policy.cidrs) (void)policy.check_address(c.cidr.network, 443);
                (void)policy.describe();
            }
            break;
        }
        case 1: (void)parse_domain_rule(text); (void)parse_cidr_rule(text); (void)canonical_name(text); break;
        case 2: {
            auto m = dns::parse(wire);
            if (m) for (const auto& q : m->questions) (void)dns::encode_name(q.name);
            break;
        }
        default: {
            auto m = dns::parse(wire, true);
            if (m && !m->questions.empty()) (void)dns::build_answer(wire, *m, dns::NoError, {{1, 2, 3, 4}}, 5);
            break;
        }
    }
    return 0;
}
