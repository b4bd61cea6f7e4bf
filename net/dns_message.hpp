// DNS messages (RFC 1035): a bounded parser and the few builders the
// egress stub and the runtime's own resolver need.
//
// Everything parsed here comes from a hostile sandbox (queries to the stub)
// or from the network (answers): the parser reads at most max_message
// bytes, follows compression pointers only backwards and at most
// max_pointer_jumps times (a loop cannot hold it), caps a name at 255 wire
// bytes and each section at max_records entries, and never trusts a length
// field beyond the buffer. Labels are kept in presentation form: bytes
// outside [!-~], and '.' or '\' inside a label, are escaped as \DDD or \c
// (RFC 4343), so a name's text is unambiguous and never a valid hostname
// unless its wire form was one.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/error.hpp"

namespace nucleus::net::dns {

enum Type : uint16_t {
    A = 1,
    NS = 2,
    CNAME = 5,
    SOA = 6,
    NULL_RR = 10,
    PTR = 12,
    MX = 15,
    TXT = 16,
    AAAA = 28,
    SRV = 33,
    OPT = 41,
    SVCB = 64,
    HTTPS = 65,
    ANY = 255,
};
enum Class : uint16_t { IN = 1 };
enum Rcode : uint8_t { NoError = 0, FormErr = 1, ServFail = 2, NXDomain = 3, NotImp = 4, Refused = 5 };

constexpr size_t max_message = 65535;
constexpr size_t max_records = 64;
constexpr int max_pointer_jumps = 32;

struct Header {
    uint16_t id = 0;
    bool response = false;  // QR
    uint8_t opcode = 0;
    bool authoritative = false;
    bool truncated = false;  // TC
    bool recursion_desired = false;
    bool recursion_available = false;
    uint8_t rcode = 0;
    uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
};

struct Question {
    std::string name;  // presentation form, as sent (case kept)
    uint16_t type = 0;
    uint16_t klass = 0;
};

struct Record {
    std::string name;
    uint16_t type = 0;
    uint16_t klass = 0;
    uint32_t ttl = 0;
    std::vector<uint8_t> data;  // RDATA as on the wire
    std::string target;  // CNAME: the name it points to, decoded
    uint32_t soa_minimum = 0;  // SOA: the negative-caching TTL (RFC 2308)
};

struct Message {
    Header header;
    std::vector<Question> questions;
    std::vector<Record> answers;
    std::vector<Record> authority;  // SOA for negative answers
    // The wire bytes of the question section (for echoing it unchanged).
    size_t question_end = 12;
};

// Parses a whole message. `questions_only` stops after the question section
// (the stub does not need what follows, e.g. an EDNS OPT record).
Result<Message> parse(std::span<const uint8_t> wire, bool questions_only = false);

// Only the 12-byte header (for answering FORMERR to a query whose body is bad).
std::optional<Header> parse_header(std::span<const uint8_t> wire);

// A recursive query for (name, type) with EDNS0 (UDP payload 1232).
Result<std::vector<uint8_t>> build_query(uint16_t id, std::string_view name, uint16_t type);

// A response to `query` (its id, RD bit and question section echoed), with
// `rcode` and A/AAAA answers (`addresses` holds 4- or 16-byte RDATA each).
std::vector<uint8_t> build_answer(std::span<const uint8_t> query, const Message& parsed, Rcode rcode,
                                  const std::vector<std::vector<uint8_t>>& addresses, uint32_t ttl);

// A header-only error response (no question echoed), e.g. FORMERR.
std::vector<uint8_t> build_error(const Header& query, Rcode rcode);

// Encodes presentation form into wire labels; nullopt when a label is
// empty or longer than 63 bytes, or the name longer than 255 bytes.
std::optional<std::vector<uint8_t>> encode_name(std::string_view name);

}  // namespace nucleus::net::dns
