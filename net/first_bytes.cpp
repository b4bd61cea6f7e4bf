#include "net/first_bytes.hpp"

#include <vector>

namespace nucleus::net {

namespace {

class Cursor {
public:
    Cursor(const uint8_t* p, size_t n) : p_(p), n_(n) {}
    bool skip(size_t k) {
        if (k > n_ - pos_) return false;
        pos_ += k;
        return true;
    }
    bool u8(size_t& v) {
        if (pos_ + 1 > n_) return false;
        v = p_[pos_++];
        return true;
    }
    bool u16(size_t& v) {
        if (pos_ + 2 > n_) return false;
        v = static_cast<size_t>(p_[pos_]) << 8 | p_[pos_ + 1];
        pos_ += 2;
        return true;
    }
    // A sub-cursor over the next `k` bytes.
    bool sub(size_t k, Cursor& out) {
        if (k > n_ - pos_) return false;
        out = Cursor(p_ + pos_, k);
        pos_ += k;
        return true;
    }
    const uint8_t* here() const { return p_ + pos_; }
    bool done() const { return pos_ == n_; }

private:
    const uint8_t* p_;
    size_t n_;
    size_t pos_ = 0;
};

// RFC 8446 4.1.2 ClientHello body; RFC 6066 3 server_name extension.
FirstBytes parse_client_hello(const uint8_t* body, size_t length) {
    FirstBytes out{StreamKind::Tls, std::nullopt};
    Cursor c(body, length);
    size_t n;
    if (!c.skip(2 + 32) || !c.u8(n) || !c.skip(n) || !c.u16(n) || !c.skip(n) || !c.u8(n) || !c.skip(n))
        return {StreamKind::Invalid, std::nullopt};
    if (c.done()) return out;  // no extensions at all
    Cursor extensions(nullptr, 0);
    if (!c.u16(n) || !c.sub(n, extensions)) return {StreamKind::Invalid, std::nullopt};
    while (!extensions.done()) {
        size_t type, len;
        Cursor ext(nullptr, 0);
        if (!extensions.u16(type) || !extensions.u16(len) || !extensions.sub(len, ext))
            return {StreamKind::Invalid, std::nullopt};
        if (type != 0) continue;
        Cursor list(nullptr, 0);
        if (!ext.u16(n) || !ext.sub(n, list)) return {StreamKind::Invalid, std::nullopt};
        while (!list.done()) {
            size_t name_type, name_len;
            if (!list.u8(name_type) || !list.u16(name_len)) return {StreamKind::Invalid, std::nullopt};
            const uint8_t* name = list.here();
            if (!list.skip(name_len)) return {StreamKind::Invalid, std::nullopt};
            if (name_type == 0) {  // host_name; a second one is ambiguous
                if (out.host) return {StreamKind::Invalid, std::nullopt};
                out.host = std::string(reinterpret_cast<const char*>(name), name_len);
            }
        }
    }
    return out;
}

FirstBytes inspect_tls(std::span<const uint8_t> data) {
    // Handshake bytes from consecutive handshake records.
    std::vector<uint8_t> handshake;
    size_t pos = 0;
    for (;;) {
        if (data.size() - pos < 5)
            return {data.size() > max_first_bytes ? StreamKind::Invalid : StreamKind::NeedMore, {}};
        if (data[pos] != 0x16 || data[pos + 1] != 0x03) return {StreamKind::Invalid, std::nullopt};
        size_t record = static_cast<size_t>(data[pos + 3]) << 8 | data[pos + 4];
        if (record == 0 || record > 16384) return {StreamKind::Invalid, std::nullopt};
        if (data.size() - pos - 5 < record)
            return {pos + 5 + record > max_first_bytes ? StreamKind::Invalid : StreamKind::NeedMore, std::nullopt};
        handshake.insert(handshake.end(), data.begin() + static_cast<ptrdiff_t>(pos + 5),
                         data.begin() + static_cast<ptrdiff_t>(pos + 5 + record));
        pos += 5 + record;
        if (handshake.size() < 4) continue;
        if (handshake[0] != 1) return {StreamKind::Invalid, std::nullopt};  // not a ClientHello
        size_t body = static_cast<size_t>(handshake[1]) << 16 | static_cast<size_t>(handshake[2]) << 8 | handshake[3];
        if (body > max_first_bytes) return {StreamKind::Invalid, std::nullopt};
        if (handshake.size() - 4 >= body) return parse_client_hello(handshake.data() + 4, body);
    }
}

bool is_method_char(uint8_t c) { return (c >= 'A' && c <= 'Z') || c == '-' || c == '_'; }

}  // namespace

FirstBytes inspect_first_bytes(std::span<const uint8_t> data) {
    if (data.empty()) return {};
    if (data[0] == 0x16) return inspect_tls(data);
    // An HTTP/1.x request line starts with a method token and a space.
    size_t i = 0;
    while (i < data.size() && i < 24 && is_method_char(data[i])) ++i;
    if (i == data.size() && i < 24) return {};
    if (i > 0 && i < data.size() && data[i] == ' ') return {StreamKind::Http, std::nullopt};
    return {StreamKind::Other, std::nullopt};
}

}  // namespace nucleus::net
