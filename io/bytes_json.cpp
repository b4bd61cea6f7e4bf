#include "io/bytes_json.hpp"

#include <array>
#include <cstdint>

namespace nucleus::io {

bool is_valid_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        unsigned char c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (static_cast<size_t>(end - p) < len) return false;
        for (size_t i = 1; i < len; ++i) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        static constexpr uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        p += len;
    }
    return true;
}

namespace {
constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        uint32_t v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
        for (int shift : {18, 12, 6, 0}) out += alphabet[(v >> shift) & 63];
    }
    if (size_t rest = bytes.size() - i; rest > 0) {
        uint32_t v = at(i) << 16 | (rest == 2 ? at(i + 1) << 8 : 0);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

Result<std::string> base64_decode(std::string_view text) {
    static const std::array<int8_t, 256> value = [] {
        std::array<int8_t, 256> t{};
        t.fill(-1);
        for (int k = 0; k < 64; ++k) t[static_cast<unsigned char>(alphabet[k])] = static_cast<int8_t>(k);
        return t;
    }();
    if (text.size() % 4 != 0) return Error::plain("base64: length is not a multiple of 4");
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        int pad = 0;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; ++k) {
            char c = text[i + k];
            if (c == '=' && i + 4 == text.size() && k >= 2) {
                ++pad;
                v <<= 6;
                continue;
            }
            int8_t d = value[static_cast<unsigned char>(c)];
            if (d < 0 || pad) return Error::plain("base64: invalid character at offset " + std::to_string(i + k));
            v = v << 6 | static_cast<uint32_t>(d);
        }
        out += static_cast<char>(v >> 16 & 0xFF);
        if (pad < 2) out += static_cast<char>(v >> 8 & 0xFF);
        if (pad < 1) out += static_cast<char>(v & 0xFF);
    }
    return out;
}

nlohmann::json bytes_json(std::string_view bytes) {
    if (is_valid_utf8(bytes)) return std::string(bytes);
    return nlohmann::json{{"base64", base64_encode(bytes)}};
}

Result<std::string> bytes_from_json(const nlohmann::json& value, std::string_view what) {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_object() && value.size() == 1 && value.contains("base64") && value["base64"].is_string()) {
        auto decoded = base64_decode(value["base64"].get_ref<const std::string&>());
        if (!decoded) return std::move(decoded).error().wrap(what);
        return decoded;
    }
    return Error::plain(std::string(what) + ": must be a string or {\"base64\": \"...\"}");
}

nlohmann::json bytes_json_array(const std::vector<std::string>& list) {
    auto out = nlohmann::json::array();
    for (const auto& item : list) out.push_back(bytes_json(item));
    return out;
}

std::string dump_json(const nlohmann::json& value, int indent) {
    return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace nucleus::io
