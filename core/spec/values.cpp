#include "core/spec/values.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "io/bytes_json.hpp"
#include "isolation/cgroup/limits.hpp"

namespace nucleus::core::spec_values {

Error bad(const SpecKey& key, const std::string& why) { return Error::plain(key_label(key) + ": " + why); }
Error bad(std::string_view key, const std::string& why) { return Error::plain(key_label(key) + ": " + why); }

std::string shown(const std::string& bytes) {
    std::string out = "\"";
    for (unsigned char c : bytes) {
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
            out += static_cast<char>(c);
        } else if (c >= 0x80 && io::is_valid_utf8(bytes)) {
            out += static_cast<char>(c);  // readable UTF-8 stays as it is
        } else {
            char esc[5];
            std::snprintf(esc, sizeof esc, "\\x%02x", c);
            out += esc;
        }
    }
    return out + "\"";
}

Result<std::string> text(const json& value, const SpecKey& key) {
    if (!value.is_string() && !value.is_object()) return bad(key, "must be a string");
    auto bytes = io::bytes_from_json(value, key.key);
    if (!bytes) return bad(key, "must be a string or {\"base64\": \"...\"}");
    if (bytes->find('\0') != std::string::npos) return bad(key, "must not contain NUL bytes");
    return bytes;
}

Result<std::vector<std::string>> text_list(const json& value, const SpecKey& key) {
    std::vector<std::string> out;
    if (!value.is_array()) {
        auto one = text(value, key);
        if (!one) return bad(key, "must be a list of strings");
        out.push_back(std::move(*one));
        return out;
    }
    for (const auto& item : value) {
        if (!item.is_string() && !item.is_object()) return bad(key, "must be a list of strings");
        auto one = text(item, key);
        if (!one) return std::move(one).error();
        out.push_back(std::move(*one));
    }
    return out;
}

Result<bool> boolean(const json& value, const SpecKey& key) {
    if (!value.is_boolean()) return bad(key, "must be true or false");
    return value.get<bool>();
}

Result<int64_t> integer(const json& value, const SpecKey& key, int64_t low, int64_t high) {
    auto range = [&] {
        return bad(key, "must be an integer from " + std::to_string(low) + " to " + std::to_string(high));
    };
    int64_t v = 0;
    if (value.is_number_integer()) {
        if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(INT64_MAX)) return range();
        v = value.get<int64_t>();
    } else if (value.is_string()) {
        const auto& s = value.get_ref<const std::string&>();
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return range();
    } else {
        return range();
    }
    if (v < low || v > high) return range();
    return v;
}

Result<double> number(const json& value, const SpecKey& key) {
    if (value.is_number()) return value.get<double>();
    if (value.is_string()) {
        const auto& s = value.get_ref<const std::string&>();
        double v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (!s.empty() && ec == std::errc{} && end == s.data() + s.size()) return v;
    }
    return bad(key, "must be a number");
}

Result<uint64_t> size(const json& value, const SpecKey& key) {
    if (value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0))
        return value.get<uint64_t>();
    if (!value.is_string()) return bad(key, "must be a size such as 512m or 2g");
    auto parsed = isolation::parse_size(value.get<std::string>());
    if (!parsed) return bad(key, parsed.error().message);
    return *parsed;
}

Result<std::string> sandbox_path(const std::string& path, const SpecKey& key) {
    if (path.empty() || path[0] != '/') return bad(key, shown(path) + " must be an absolute path in the sandbox");
    std::string normal = std::filesystem::path(path).lexically_normal().string();
    if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
    if (normal.find("/../") != std::string::npos || normal.ends_with("/.."))
        return bad(key, shown(path) + " escapes /");
    return normal;
}

}  // namespace nucleus::core::spec_values
