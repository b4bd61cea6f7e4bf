// Bytes in JSON, losslessly.
//
// Paths, environment values, argv and process output are bytes, not text:
// Linux lets any byte but NUL into them, and a sandbox writes whatever it
// likes. JSON strings are Unicode, and nlohmann/json refuses to serialise a
// string that is not valid UTF-8 (type_error 316). So everywhere such a
// value is stored (records) or sent (the API), it goes through these two
// functions and one documented encoding (docs/API.md, "Bytes"):
//
//   valid UTF-8           -> a JSON string, as is
//   anything else         -> {"base64": "<RFC 4648 base64 of the bytes>"}
//
// Readers accept both forms for every such field, so a client that always
// sends {"base64": ...} is as correct as one that sends strings.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "io/error.hpp"

namespace nucleus::io {

// RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view bytes) noexcept;

std::string base64_encode(std::string_view bytes);
// Standard alphabet with padding; whitespace is not accepted.
Result<std::string> base64_decode(std::string_view text);

// `bytes` as a JSON string when it is valid UTF-8, else {"base64": ...}.
nlohmann::json bytes_json(std::string_view bytes);

// The inverse: a JSON string (its UTF-8 bytes) or {"base64": "..."}.
// `what` names the field in the error.
Result<std::string> bytes_from_json(const nlohmann::json& value, std::string_view what);

// A JSON array of bytes_json values.
nlohmann::json bytes_json_array(const std::vector<std::string>& list);

// Serialises `value` for a record or an API answer. Every byte-valued field
// is expected to have gone through bytes_json(); anything that slipped
// through is replaced (U+FFFD) rather than thrown on, so a missed field
// costs fidelity of that field, never the request or the daemon's task.
std::string dump_json(const nlohmann::json& value, int indent = -1);

}  // namespace nucleus::io
