// Query parameters, read one way everywhere and strictly: a value that is
// not what the parameter takes is an error naming the parameter (the
// endpoint answers 400), never quietly the default. `?force=yes` is refused,
// not false.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "io/error.hpp"
#include "io/http.hpp"

namespace nucleus::core::daemon {

// "true" or "1", "false" or "0"; `fallback` when absent.
Result<bool> query_flag(const io::http::Request& req, std::string_view key, bool fallback = false);

// A number of seconds, 0 to one year, fractions allowed; nullopt when absent.
Result<std::optional<double>> query_seconds(const io::http::Request& req, std::string_view key);

// A count from 0 to `max` in decimal digits; nullopt when absent, or when
// the value is `all_word` (e.g. tail=all) if one is given.
Result<std::optional<uint64_t>> query_count(const io::http::Request& req, std::string_view key, uint64_t max,
                                            std::string_view all_word = {});

// One of `choices`; `fallback` when absent.
Result<std::string> query_choice(const io::http::Request& req, std::string_view key,
                                 std::initializer_list<std::string_view> choices, std::string_view fallback);

// Every parameter is one the endpoint takes (`accepted`; empty entries are
// ignored): a misspelt one would otherwise be ignored without a word.
Status check_query_keys(const io::http::Request& req, std::span<const std::string_view> accepted);

}  // namespace nucleus::core::daemon
