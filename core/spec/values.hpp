// Pure readers of spec document values, shared by the key rows. Each names
// its key in the error ("memory (--memory): must be a size such as 512m").
// Byte-valued settings (paths, environment, the command) may arrive as a
// JSON string or as {"base64": ...} (io/bytes_json.hpp); every reader here
// accepts both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/spec/keys.hpp"
#include "io/error.hpp"

namespace nucleus::core::spec_values {

using nlohmann::json;

Error bad(const SpecKey& key, const std::string& why);
Error bad(std::string_view key, const std::string& why);

// A string or {"base64"}; never holding NUL.
Result<std::string> text(const json& value, const SpecKey& key);
// A string, a {"base64"}, or a list of either.
Result<std::vector<std::string>> text_list(const json& value, const SpecKey& key);
Result<bool> boolean(const json& value, const SpecKey& key);
// An integer, or a string holding one, within [low, high].
Result<int64_t> integer(const json& value, const SpecKey& key, int64_t low, int64_t high);
// A number, or a string holding one.
Result<double> number(const json& value, const SpecKey& key);
// A byte count: an integer or "512m", "2g"...
Result<uint64_t> size(const json& value, const SpecKey& key);
// An absolute path inside the sandbox, normalised; never escapes "/".
Result<std::string> sandbox_path(const std::string& path, const SpecKey& key);

// Quoted for messages: bytes that are not printable ASCII as \xNN.
std::string shown(const std::string& bytes);

}  // namespace nucleus::core::spec_values
