#include "net/dns_message.hpp"

namespace nucleus::net::dns {

namespace {

class Reader {
public:
    explicit Reader(std::span<const uint8_t> wire) : wire_(wire) {}

    size_t offset() const { return pos_; }
    bool u8(uint8_t& v) {
        if (pos_ + 1 > wire_.size()) return false;
        v = wire_[pos_++];
        return true;
    }
    bool u16(uint16_t& v) {
        if (pos_ + 2 > wire_.size()) return false;
        v = static_cast<uint16_t>(wire_[pos_] << 8 | wire_[pos_ + 1]);
        pos_ += 2;
        return true;
    }
    bool u32(uint32_t& v) {
        uint16_t hi, lo;
        if (!u16(hi) || !u16(lo)) return false;
        v = static_cast<uint32_t>(hi) << 16 | lo;
        return true;
    }
    bool bytes(size_t n, std::vector<uint8_t>& out) {
        if (n > wire_.size() - pos_) return false;
        out.assign(wire_.begin() + static_cast<ptrdiff_t>(pos_), wire_.begin() + static_cast<ptrdiff_t>(pos_ + n));
        pos_ += n;
        return true;
    }
    // A possibly compressed name at the current position; the position
    // moves past its in-place part (up to and including the first pointer).
    bool name(std::string& out) { return read_name_at(pos_, out, &pos_); }
    // A name at `at` (inside RDATA), without moving the position.
    bool name_at(size_t at, std::string& out) const { return read_name_at(at, out, nullptr); }

private:
    static void append_label(std::string& out, const uint8_t* label, size_t n) {
        if (!out.empty()) out.push_back('.');
        for (size_t i = 0; i < n; ++i) {
            uint8_t c = label[i];
            if (c == '.' || c == '\\') {
                out.push_back('\\');
                out.push_back(static_cast<char>(c));
            } else if (c < 0x21 || c > 0x7e) {
                char esc[5] = {'\\', static_cast<char>('0' + c / 100), static_cast<char>('0' + c / 10 % 10),
                               static_cast<char>('0' + c % 10), 0};
                out += esc;
            } else {
                out.push_back(static_cast<char>(c));
            }
        }
    }

    bool read_name_at(size_t at, std::string& out, size_t* end) const {
        out.clear();
        size_t wire_length = 0;
        int jumps = 0;
        bool jumped = false;
        // Pointers must point strictly before the label that holds them, so
        // every jump moves backwards and the walk ends.
        size_t limit = at;
        for (;;) {
            if (at >= wire_.size()) return false;
            uint8_t len = wire_[at];
            if ((len & 0xc0) == 0xc0) {
                if (at + 1 >= wire_.size()) return false;
                size_t target = static_cast<size_t>(len & 0x3f) << 8 | wire_[at + 1];
                if (!jumped && end) *end = at + 2;
                if (target >= limit || ++jumps > max_pointer_jumps) return false;
                jumped = true;
                limit = target;
                at = target;
                continue;
            }
            if (len & 0xc0) return false;  // 0x40/0x80: extended label types, obsolete
            if (at + 1 + len > wire_.size()) return false;
            wire_length += 1u + len;
            if (wire_length > 255) return false;
            if (len == 0) {
                if (!jumped && end) *end = at + 1;
                return true;
            }
            append_label(out, &wire_[at + 1], len);
            at += 1u + len;
        }
    }

    std::span<const uint8_t> wire_;
    size_t pos_ = 0;
};

bool read_header(Reader& r, Header& h) {
    uint16_t flags;
    if (!r.u16(h.id) || !r.u16(flags) || !r.u16(h.qdcount) || !r.u16(h.ancount) || !r.u16(h.nscount) ||
        !r.u16(h.arcount))
        return false;
    h.response = flags & 0x8000;
    h.opcode = static_cast<uint8_t>((flags >> 11) & 0xf);
    h.authoritative = flags & 0x0400;
    h.truncated = flags & 0x0200;
    h.recursion_desired = flags & 0x0100;
    h.recursion_available = flags & 0x0080;
    h.rcode = static_cast<uint8_t>(flags & 0xf);
    return true;
}

bool read_record(Reader& r, Record& rec) {
    uint16_t rdlength;
    if (!r.name(rec.name) || !r.u16(rec.type) || !r.u16(rec.klass) || !r.u32(rec.ttl) || !r.u16(rdlength)) return false;
    size_t start = r.offset();
    if (!r.bytes(rdlength, rec.data)) return false;
    if (rec.type == CNAME && !r.name_at(start, rec.target)) return false;
    if (rec.type == SOA) {
        // MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM: the last 4 bytes.
        if (rec.data.size() < 22) return false;
        const uint8_t* m = rec.data.data() + rec.data.size() - 4;
        rec.soa_minimum = static_cast<uint32_t>(m[0]) << 24 | m[1] << 16 | m[2] << 8 | m[3];
    }
    return true;
}

bool read_section(Reader& r, uint16_t count, std::vector<Record>& out) {
    if (count > max_records) return false;
    for (uint16_t i = 0; i < count; ++i) {
        Record rec;
        if (!read_record(r, rec)) return false;
        out.push_back(std::move(rec));
    }
    return true;
}

void put16(std::vector<uint8_t>& out, uint16_t v) {
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
}

void put32(std::vector<uint8_t>& out, uint32_t v) {
    put16(out, static_cast<uint16_t>(v >> 16));
    put16(out, static_cast<uint16_t>(v));
}

}  // namespace

std::optional<Header> parse_header(std::span<const uint8_t> wire) {
    Reader r(wire);
    Header h;
    if (!read_header(r, h)) return std::nullopt;
    return h;
}

Result<Message> parse(std::span<const uint8_t> wire, bool questions_only) {
    if (wire.size() > max_message) return Error::plain("DNS message longer than 65535 bytes");
    Reader r(wire);
    Message m;
    if (!read_header(r, m.header)) return Error::plain("DNS message shorter than its header");
    if (m.header.qdcount > max_records) return Error::plain("DNS message with too many questions");
    for (uint16_t i = 0; i < m.header.qdcount; ++i) {
        Question q;
        if (!r.name(q.name) || !r.u16(q.type) || !r.u16(q.klass)) return Error::plain("malformed DNS question");
        m.questions.push_back(std::move(q));
    }
    m.question_end = r.offset();
    if (questions_only) return m;
    if (!read_section(r, m.header.ancount, m.answers)) return Error::plain("malformed DNS answer section");
    if (!read_section(r, m.header.nscount, m.authority)) return Error::plain("malformed DNS authority section");
    return m;
}

std::optional<std::vector<uint8_t>> encode_name(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    std::vector<uint8_t> out;
    if (name.empty()) {
        out.push_back(0);
        return out;
    }
    size_t start = 0;
    while (start <= name.size()) {
        size_t dot = name.find('.', start);
        if (dot == std::string_view::npos) dot = name.size();
        size_t len = dot - start;
        if (len == 0 || len > 63) return std::nullopt;
        out.push_back(static_cast<uint8_t>(len));
        for (size_t i = start; i < dot; ++i) {
            if (name[i] == '\\') return std::nullopt;  // escapes are for display only
            out.push_back(static_cast<uint8_t>(name[i]));
        }
        start = dot + 1;
        if (dot == name.size()) break;
    }
    out.push_back(0);
    if (out.size() > 255) return std::nullopt;
    return out;
}

Result<std::vector<uint8_t>> build_query(uint16_t id, std::string_view name, uint16_t type) {
    auto encoded = encode_name(name);
    if (!encoded) return Error::plain("not a DNS name: " + std::string(name));
    std::vector<uint8_t> out;
    put16(out, id);
    put16(out, 0x0100);  // RD
    put16(out, 1);
    put16(out, 0);
    put16(out, 0);
    put16(out, 1);  // the OPT record
    out.insert(out.end(), encoded->begin(), encoded->end());
    put16(out, type);
    put16(out, IN);
    // OPT (RFC 6891): root name, type 41, class = UDP payload size, TTL 0, no options.
    out.push_back(0);
    put16(out, OPT);
    put16(out, 1232);
    put32(out, 0);
    put16(out, 0);
    return out;
}

std::vector<uint8_t> build_answer(std::span<const uint8_t> query, const Message& parsed, Rcode rcode,
                                  const std::vector<std::vector<uint8_t>>& addresses, uint32_t ttl) {
    std::vector<uint8_t> out;
    put16(out, parsed.header.id);
    uint16_t flags = 0x8000 | 0x0400 | 0x0080 | rcode;  // QR, AA, RA
    if (parsed.header.recursion_desired) flags |= 0x0100;
    put16(out, flags);
    put16(out, static_cast<uint16_t>(parsed.questions.size()));
    put16(out, static_cast<uint16_t>(addresses.size()));
    put16(out, 0);
    put16(out, 0);
    out.insert(out.end(), query.begin() + 12, query.begin() + static_cast<ptrdiff_t>(parsed.question_end));
    for (const auto& rdata : addresses) {
        put16(out, 0xc00c);  // the first question's name, at offset 12
        put16(out, rdata.size() == 4 ? A : AAAA);
        put16(out, IN);
        put32(out, ttl);
        put16(out, static_cast<uint16_t>(rdata.size()));
        out.insert(out.end(), rdata.begin(), rdata.end());
    }
    return out;
}

std::vector<uint8_t> build_error(const Header& query, Rcode rcode) {
    std::vector<uint8_t> out;
    put16(out, query.id);
    uint16_t flags = 0x8000 | 0x0080 | static_cast<uint16_t>(query.opcode << 11) | rcode;
    if (query.recursion_desired) flags |= 0x0100;
    put16(out, flags);
    for (int i = 0; i < 4; ++i) put16(out, 0);
    return out;
}

}  // namespace nucleus::net::dns
