#include "io/http_request.hpp"

#include <algorithm>
#include <cctype>

namespace nucleus::io::http {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

namespace detail {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

RequestParser::RequestParser(const Limits& limits) : limits_(limits) {
    http_parser_settings_init(&settings_);
    settings_.on_url = on_url;
    settings_.on_header_field = on_header_field;
    settings_.on_header_value = on_header_value;
    settings_.on_headers_complete = on_headers_complete;
    settings_.on_body = on_body;
    settings_.on_message_complete = on_message_complete;
    reset();
}

void RequestParser::reset() {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
    request = Request{};
    header_bytes_ = 0;
    message_bytes_ = 0;
    in_value_ = false;
    headers_done_ = false;
    complete_ = false;
    expects_continue = false;
    reject_status = 0;
    reject_message.clear();
}

size_t RequestParser::feed(std::string_view data) {
    size_t n = http_parser_execute(&parser_, &settings_, data.data(), data.size());
    message_bytes_ += n;
    if (complete_) {
        http_parser_pause(&parser_, 0);
        return n;
    }
    auto err = HTTP_PARSER_ERRNO(&parser_);
    if (reject_status == 0 && err == HPE_HEADER_OVERFLOW) reject(431, "request header too large");
    if (reject_status == 0 && err != HPE_OK)
        reject(400, std::string("malformed request: ") + http_errno_description(err));
    if (reject_status == 0 && !headers_done_ && message_bytes_ > limits_.max_header_bytes) header_too_large();
    if (reject_status == 0 && n < data.size()) reject(400, "malformed request");
    return n;
}

void RequestParser::reject(int status, std::string message) {
    reject_status = status;
    reject_message = std::move(message);
}

void RequestParser::header_too_large() {
    reject(431, "request header larger than " + std::to_string(limits_.max_header_bytes) + " bytes");
}

// Counts what the headers cost us; ": " and CRLF included so that many
// tiny headers are bounded too.
bool RequestParser::charge_header(size_t length) {
    header_bytes_ += length;
    if (header_bytes_ <= limits_.max_header_bytes) return true;
    header_too_large();
    return false;
}

Status RequestParser::split_target() {
    http_parser_url url;
    http_parser_url_init(&url);
    const std::string& t = request.target;
    if (http_parser_parse_url(t.data(), t.size(), 0, &url) != 0 || !(url.field_set & (1 << UF_PATH)))
        return Error::plain("malformed request target \"" + t + "\"");
    auto field = [&](int f) { return std::string_view(t).substr(url.field_data[f].off, url.field_data[f].len); };
    auto path = percent_decode(field(UF_PATH), false);
    if (!path) return Error::plain("malformed request path: " + path.error().message);
    request.path = std::move(*path);
    if (!(url.field_set & (1 << UF_QUERY))) return {};
    std::string_view query = field(UF_QUERY);
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        auto key = percent_decode(pair.substr(0, eq), true);
        auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
        if (!key || !value) return Error::plain("malformed query string in \"" + t + "\"");
        request.query[std::move(*key)] = std::move(*value);
    }
    return {};
}

int RequestParser::on_url(http_parser* p, const char* at, size_t length) {
    auto& s = self(p);
    if (!s.charge_header(length)) return -1;
    s.request.target.append(at, length);
    return 0;
}

int RequestParser::on_header_field(http_parser* p, const char* at, size_t length) {
    auto& s = self(p);
    if (!s.charge_header(length + (s.in_value_ || s.request.headers.empty() ? 4 : 0))) return -1;
    if (s.in_value_ || s.request.headers.empty()) s.request.headers.emplace_back();
    s.in_value_ = false;
    s.request.headers.back().first.append(at, length);
    return 0;
}

int RequestParser::on_header_value(http_parser* p, const char* at, size_t length) {
    auto& s = self(p);
    if (!s.charge_header(length)) return -1;
    s.in_value_ = true;
    s.request.headers.back().second.append(at, length);
    return 0;
}

int RequestParser::on_headers_complete(http_parser* p) {
    auto& s = self(p);
    s.headers_done_ = true;
    s.request.method = http_method_str(static_cast<http_method>(p->method));
    if (p->method == HTTP_CONNECT || (p->flags & F_UPGRADE)) {
        s.reject(400, "protocol upgrades are not supported");
        return -1;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > s.limits_.max_body_bytes) {
        s.reject(413, "request body larger than " + std::to_string(s.limits_.max_body_bytes) + " bytes");
        return -1;
    }
    s.expects_continue = iequals(s.request.header("expect"), "100-continue");
    if (auto st = s.split_target(); !st) {
        s.reject(400, st.error().message);
        return -1;
    }
    return 0;
}

int RequestParser::on_body(http_parser* p, const char* at, size_t length) {
    auto& s = self(p);
    // Chunked bodies have no length up front: bounded as they arrive.
    if (s.request.body.size() + length > s.limits_.max_body_bytes) {
        s.reject(413, "request body larger than " + std::to_string(s.limits_.max_body_bytes) + " bytes");
        return -1;
    }
    s.request.body.append(at, length);
    return 0;
}

int RequestParser::on_message_complete(http_parser* p) {
    self(p).complete_ = true;
    http_parser_pause(p, 1);
    return 0;
}

}  // namespace detail

std::string Request::header(std::string_view name) const {
    for (const auto& [key, value] : headers)
        if (detail::iequals(key, name)) return value;
    return "";
}

// --- percent encoding ----------------------------------------------------------

Result<std::string> percent_decode(std::string_view text, bool plus_is_space) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else if (c == '%') {
            int hi = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
            int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
            if (hi < 0 || lo < 0) return Error::plain("bad percent escape in \"" + std::string(text) + "\"");
            char decoded = static_cast<char>(hi * 16 + lo);
            if (decoded == '\0') return Error::plain("encoded NUL in \"" + std::string(text) + "\"");
            out.push_back(decoded);
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string percent_encode(std::string_view text) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(digits[c >> 4]);
            out.push_back(digits[c & 15]);
        }
    }
    return out;
}

}  // namespace nucleus::io::http
