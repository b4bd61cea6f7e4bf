#include "core/daemon/query.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>

namespace nucleus::core::daemon {

namespace {

const std::string* find(const io::http::Request& req, std::string_view key) {
    auto it = req.query.find(std::string(key));
    return it == req.query.end() ? nullptr : &it->second;
}

Error bad(std::string_view key, std::string_view takes, const std::string& got) {
    return Error::plain(std::string(key) + " must be " + std::string(takes) + ", got '" + got + "'");
}

}  // namespace

Result<bool> query_flag(const io::http::Request& req, std::string_view key, bool fallback) {
    const std::string* value = find(req, key);
    if (!value) return fallback;
    if (*value == "true" || *value == "1") return true;
    if (*value == "false" || *value == "0") return false;
    return bad(key, "true or false", *value);
}

Result<std::optional<double>> query_seconds(const io::http::Request& req, std::string_view key) {
    const std::string* value = find(req, key);
    if (!value) return std::optional<double>();
    // strtod would take "inf", "nan", hex and leading spaces: digits only.
    bool plain = !value->empty() &&
                 std::all_of(value->begin(), value->end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
    char* end = nullptr;
    double seconds = plain ? std::strtod(value->c_str(), &end) : -1;
    if (!plain || *end != '\0' || !(seconds >= 0) || seconds > 86400.0 * 365)
        return bad(key, "a number of seconds", *value);
    return std::optional<double>(seconds);
}

Result<std::optional<uint64_t>> query_count(const io::http::Request& req, std::string_view key, uint64_t max,
                                            std::string_view all_word) {
    const std::string* value = find(req, key);
    if (!value || (!all_word.empty() && *value == all_word)) return std::optional<uint64_t>();
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
    if (value->empty() || ec != std::errc{} || end != value->data() + value->size() || n > max) {
        std::string takes = "a count from 0 to " + std::to_string(max);
        if (!all_word.empty()) takes += " (or " + std::string(all_word) + ")";
        return bad(key, takes, *value);
    }
    return std::optional<uint64_t>(n);
}

Result<std::string> query_choice(const io::http::Request& req, std::string_view key,
                                 std::initializer_list<std::string_view> choices, std::string_view fallback) {
    const std::string* value = find(req, key);
    if (!value) return std::string(fallback);
    if (std::find(choices.begin(), choices.end(), *value) != choices.end()) return *value;
    std::string takes;
    for (auto c : choices) takes += (takes.empty() ? "" : " or ") + std::string(c);
    return bad(key, takes, *value);
}

Status check_query_keys(const io::http::Request& req, std::span<const std::string_view> accepted) {
    for (const auto& [key, value] : req.query) {
        if (std::find(accepted.begin(), accepted.end(), key) != accepted.end()) continue;
        std::string list;
        for (auto a : accepted)
            if (!a.empty()) list += (list.empty() ? "" : ", ") + std::string(a);
        return Error::plain("unknown query parameter '" + key + "' (" +
                            (list.empty() ? std::string("this endpoint takes none") : "it takes " + list) + ")");
    }
    return {};
}

}  // namespace nucleus::core::daemon
