// What the daemon records of a sandbox: one plain-data struct that is both
// the line in <state-dir>/daemon/<id>.json and the API's sandbox object
// (docs/API.md), kept apart from the handles and wake-ups that exist only
// while this daemon runs the sandbox (sandbox_table.hpp).
//
// Pure: encoding and decoding touch no file. Decoding reads what a crash or
// a hostile disk may have left, so it checks every type and never throws.
// Byte-valued fields (command, cgroup path, error) go through
// io/bytes_json.hpp: a string when UTF-8, else {"base64": ...}.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/error.hpp"

namespace nucleus::core::daemon {

enum class Phase { Created, Starting, Running, Exited };

const char* phase_name(Phase phase);
std::optional<Phase> phase_from(std::string_view name);

// A JSON value kept serialised: a thousand sandboxes' spec documents and
// start records as nlohmann trees cost a few KiB each in small allocations;
// as text, a few hundred bytes. Parsed again only for inspect.
class CompactJson {
public:
    CompactJson& operator=(const nlohmann::json& value);
    bool is_null() const noexcept { return text_.empty(); }
    nlohmann::json get() const;
    const std::string& text() const noexcept { return text_; }
    // Adds `"key":<this>` to the serialised, non-empty JSON object `object`
    // without parsing this value again.
    void append_to(std::string& object, const char* key) const;

private:
    std::string text_;
};

// A pipe by (st_dev, st_ino); {0, 0} when unknown.
using PipeId = std::pair<uint64_t, uint64_t>;

struct PersistedSandbox {
    std::string id;  // 32 lowercase hex digits
    std::string name;
    std::vector<std::string> command;  // bytes
    std::string mode;
    Phase phase = Phase::Created;
    bool adopted = false;  // re-adopted by a restarted daemon
    std::optional<pid_t> pid;
    unsigned long long start_ticks = 0;  // proc(5) stat field 22 of pid
    std::string cgroup_path;  // bytes; empty: none
    std::string created_at, started_at, finished_at;
    std::optional<int> exit_code;
    std::optional<int> signal;
    std::string reason;
    std::string error;  // bytes
    // Which host id range it runs in, so a daemon that re-adopts it after a
    // crash can lease that range again before anything new is created.
    std::optional<uint32_t> id_slot;
    // Its stdout and stderr pipes, so that a re-adopting daemon can find
    // them again through /proc/PID/fd (recorded while not exited).
    std::array<PipeId, 2> pipes{};
    CompactJson document;  // the spec document, resolved (core/spec.hpp)
    CompactJson start_event;  // namespaces, mounts, seccomp, Landlock, ...

    // Its exit status went to whoever reaped it (it ended while no daemon
    // watched, or after re-adoption): exit_code and signal are unknown.
    bool exit_unknown() const { return phase == Phase::Exited && reason == "exited_unobserved"; }
};

// The API's sandbox object (GET /v1/sandboxes/{id}, the list's items).
nlohmann::json sandbox_json(const PersistedSandbox& s);

// One record line, newline included: the sandbox object plus pid,
// start_ticks, id_slot, pipes, and the document and start record spliced
// in as stored.
std::string encode_record(const PersistedSandbox& s);

// The inverse, for a record read back (record_store.hpp's last_record).
// Fails, naming the field, on anything missing or of the wrong type.
Result<PersistedSandbox> decode_record(const nlohmann::json& record);

// 4 to 32 lowercase hex digits: what could be read as an id prefix.
bool looks_like_id_prefix(std::string_view text);

}  // namespace nucleus::core::daemon
