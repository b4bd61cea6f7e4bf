#include "net/http_guard.hpp"

#include <http_parser.h>

#include <charconv>
#include <cstdio>

#include "net/egress_policy.hpp"

namespace nucleus::net {

namespace {

constexpr size_t max_field = 8192;  // URL or Host value we keep

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

std::string printable(std::string_view text) {
    std::string out;
    for (unsigned char c : text.substr(0, 256)) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        }
    }
    return out;
}

std::string host_of_authority(std::string_view authority, uint16_t port) {
    if (auto at = authority.rfind('@'); at != std::string_view::npos) return "";  // userinfo: refuse
    std::string_view host = authority;
    if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        auto digits = authority.substr(colon + 1);
        unsigned p = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p);
        if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size()) return "";
        if (p != port && p != 80 && p != 443) return "";
    }
    auto name = canonical_name(host);
    return name ? *name : "";
}

struct HttpGuard::Parser {
    http_parser parser{};
    http_parser_settings settings{};
    HttpGuard* guard = nullptr;
    std::string url;
    std::string field;
    std::string value;
    bool in_value = false;
    int hosts = 0;
    std::string host;
    std::string refusal;  // of the request being parsed

    static Parser& self(http_parser* p) { return *static_cast<Parser*>(p->data); }

    void end_header() {
        if (in_value && iequals(field, "host")) {
            ++hosts;
            host = std::string(trim(value));
        }
        field.clear();
        value.clear();
        in_value = false;
    }
    static int on_message_begin(http_parser* p) {
        auto& s = self(p);
        s.url.clear();
        s.field.clear();
        s.value.clear();
        s.in_value = false;
        s.hosts = 0;
        s.host.clear();
        return 0;
    }
    static int on_url(http_parser* p, const char* at, size_t n) {
        auto& s = self(p);
        if (s.url.size() + n > max_field) return 1;
        s.url.append(at, n);
        return 0;
    }
    static int on_header_field(http_parser* p, const char* at, size_t n) {
        auto& s = self(p);
        if (s.in_value) s.end_header();
        if (s.field.size() + n > max_field) return 1;
        s.field.append(at, n);
        return 0;
    }
    static int on_header_value(http_parser* p, const char* at, size_t n) {
        auto& s = self(p);
        s.in_value = true;
        if (s.value.size() + n > max_field) return 1;
        s.value.append(at, n);
        return 0;
    }
    static int on_headers_complete(http_parser* p) {
        auto& s = self(p);
        s.end_header();
        s.check(p->method);
        ++s.guard->requests_;
        return 0;
    }

    void check(unsigned method) {
        if (!refusal.empty()) return;
        const std::string& want = guard->host_;
        if (method == HTTP_CONNECT) {
            refusal = "HTTP CONNECT refused";
            return;
        }
        // Absolute form: its authority is the target, whatever Host says.
        for (std::string_view scheme : {"http://", "https://"}) {
            if (url.size() >= scheme.size() && iequals(std::string_view(url).substr(0, scheme.size()), scheme)) {
                std::string_view rest = std::string_view(url).substr(scheme.size());
                auto authority = rest.substr(0, rest.find_first_of("/?#"));
                auto target = host_of_authority(authority, guard->port_);
                if (target != want)
                    refusal = "HTTP request for " + printable(authority) + " on a connection to " + want;
                return;
            }
        }
        if (hosts != 1) {
            refusal = hosts == 0 ? "HTTP request without a Host header" : "HTTP request with several Host headers";
            return;
        }
        if (host_of_authority(host, guard->port_) != want)
            refusal = "HTTP Host " + printable(host) + " on a connection to " + want;
    }
};

HttpGuard::HttpGuard(std::string host, uint16_t port)
    : parser_(std::make_unique<Parser>()), host_(std::move(host)), port_(port) {
    Parser& p = *parser_;
    http_parser_settings_init(&p.settings);
    p.settings.on_message_begin = Parser::on_message_begin;
    p.settings.on_url = Parser::on_url;
    p.settings.on_header_field = Parser::on_header_field;
    p.settings.on_header_value = Parser::on_header_value;
    p.settings.on_headers_complete = Parser::on_headers_complete;
    http_parser_init(&p.parser, HTTP_REQUEST);
    p.parser.data = &p;
    p.guard = this;
}

HttpGuard::~HttpGuard() = default;

bool HttpGuard::accept(std::span<const uint8_t> chunk) {
    if (!refusal_.empty()) return false;
    if (passthrough_ || chunk.empty()) return true;
    Parser& p = *parser_;
    size_t n = http_parser_execute(&p.parser, &p.settings, reinterpret_cast<const char*>(chunk.data()), chunk.size());
    if (!p.refusal.empty()) {
        refusal_ = p.refusal;
        return false;
    }
    if (p.parser.upgrade) {
        passthrough_ = true;  // the bytes after the upgrade's headers are the new protocol's
        return true;
    }
    auto err = HTTP_PARSER_ERRNO(&p.parser);
    if (err != HPE_OK || n != chunk.size()) {
        refusal_ = std::string("malformed HTTP request: ") + http_errno_description(err);
        return false;
    }
    return true;
}

}  // namespace nucleus::net
