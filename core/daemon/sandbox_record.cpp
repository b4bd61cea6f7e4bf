#include "core/daemon/sandbox_record.hpp"

#include <climits>

#include "io/bytes_json.hpp"

namespace nucleus::core::daemon {

using nlohmann::json;

const char* phase_name(Phase phase) {
    switch (phase) {
        case Phase::Created:
            return "created";
        case Phase::Starting:
            return "starting";
        case Phase::Running:
            return "running";
        case Phase::Exited:
            return "exited";
    }
    return "unknown";
}

std::optional<Phase> phase_from(std::string_view name) {
    for (Phase p : {Phase::Created, Phase::Starting, Phase::Running, Phase::Exited})
        if (name == phase_name(p)) return p;
    return std::nullopt;
}

CompactJson& CompactJson::operator=(const json& value) {
    text_ = value.is_null() ? std::string() : io::dump_json(value);
    text_.shrink_to_fit();
    return *this;
}

json CompactJson::get() const {
    if (text_.empty()) return nullptr;
    json value = json::parse(text_, nullptr, false);
    return value.is_discarded() ? json(nullptr) : value;
}

void CompactJson::append_to(std::string& object, const char* key) const {
    if (text_.empty()) return;
    object.pop_back();  // the closing brace
    ((((object += ",\"") += key) += "\":") += text_) += '}';
}

namespace {

json or_null(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

template <typename T>
json or_null(const std::optional<T>& value) {
    return value ? json(*value) : json(nullptr);
}

}  // namespace

json sandbox_json(const PersistedSandbox& s) {
    json out = {{"id", s.id},
                {"name", s.name},
                {"state", phase_name(s.phase)},
                {"pid", s.phase == Phase::Running ? or_null(s.pid) : json(nullptr)},
                {"command", io::bytes_json_array(s.command)},
                {"mode", s.mode},
                {"created_at", s.created_at},
                {"started_at", or_null(s.started_at)},
                {"finished_at", or_null(s.finished_at)},
                {"exit_code", or_null(s.exit_code)},
                {"signal", or_null(s.signal)},
                {"reason", or_null(s.reason)},
                {"cgroup", s.cgroup_path.empty() ? json(nullptr) : io::bytes_json(s.cgroup_path)},
                {"adopted", s.adopted}};
    if (!s.error.empty()) out["error"] = io::bytes_json(s.error);
    return out;
}

std::string encode_record(const PersistedSandbox& s) {
    json record = sandbox_json(s);
    record["pid"] = or_null(s.pid);
    record["start_ticks"] = s.start_ticks;
    if (s.id_slot) record["id_slot"] = *s.id_slot;
    if (s.phase != Phase::Exited && s.pipes[0].second != 0)
        record["pipes"] = {{s.pipes[0].first, s.pipes[0].second}, {s.pipes[1].first, s.pipes[1].second}};
    // The document and start record are kept as text: spliced in, not parsed.
    std::string text = io::dump_json(record);
    s.document.append_to(text, "document");
    s.start_event.append_to(text, "start_event");
    text += '\n';
    return text;
}

bool looks_like_id_prefix(std::string_view text) {
    if (text.size() < 4 || text.size() > 32) return false;
    for (char c : text)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

namespace {

// Field readers for decode_record: an absent or null field leaves `out` as
// it is; a field of the wrong type is an error naming it.
const json* field(const json& record, const char* key) {
    auto it = record.find(key);
    return it == record.end() || it->is_null() ? nullptr : &*it;
}

Error bad(const char* key, const char* expected) {
    return Error::plain(std::string("record field '") + key + "' must be " + expected);
}

Status read_string(const json& record, const char* key, std::string& out) {
    const json* v = field(record, key);
    if (!v) return {};
    if (!v->is_string()) return bad(key, "a string");
    out = v->get<std::string>();
    return {};
}

Status read_bytes(const json& record, const char* key, std::string& out) {
    const json* v = field(record, key);
    if (!v) return {};
    auto bytes = io::bytes_from_json(*v, std::string("record field '") + key + "'");
    if (!bytes) return std::move(bytes).error();
    out = std::move(*bytes);
    return {};
}

template <typename T>
Status read_integer(const json& record, const char* key, std::optional<T>& out, long long min, long long max) {
    const json* v = field(record, key);
    if (!v) return {};
    if (!v->is_number_integer()) return bad(key, "an integer");
    long long value = 0;
    if (v->is_number_unsigned()) {
        auto u = v->get<unsigned long long>();
        if (u > static_cast<unsigned long long>(LLONG_MAX)) return bad(key, "an integer in range");
        value = static_cast<long long>(u);
    } else {
        value = v->get<long long>();
    }
    if (value < min || value > max) return bad(key, "an integer in range");
    out = static_cast<T>(value);
    return {};
}

Status read_command(const json& record, std::vector<std::string>& out) {
    const json* v = field(record, "command");
    if (!v) return {};
    if (!v->is_array()) return bad("command", "an array");
    for (const auto& word : *v) {
        auto bytes = io::bytes_from_json(word, "record field 'command'");
        if (!bytes) return std::move(bytes).error();
        out.push_back(std::move(*bytes));
    }
    return {};
}

Status read_pipes(const json& record, std::array<PipeId, 2>& out) {
    const json* v = field(record, "pipes");
    if (!v) return {};
    if (!v->is_array() || v->size() != 2) return bad("pipes", "two [device, inode] pairs");
    for (size_t i = 0; i < 2; ++i) {
        const json& p = (*v)[i];
        if (!p.is_array() || p.size() != 2 || !p[0].is_number_unsigned() || !p[1].is_number_unsigned())
            return bad("pipes", "two [device, inode] pairs");
        out[i] = {p[0].get<uint64_t>(), p[1].get<uint64_t>()};
    }
    return {};
}

// id, state, document: without them a record names nothing.
Status read_identity(const json& record, PersistedSandbox& s) {
    NUCLEUS_TRY(read_string(record, "id", s.id));
    if (s.id.size() != 32 || !looks_like_id_prefix(s.id)) return bad("id", "32 lowercase hex digits");
    std::string state;
    NUCLEUS_TRY(read_string(record, "state", state));
    auto phase = phase_from(state);
    if (!phase) return bad("state", "created, starting, running or exited");
    s.phase = *phase;
    const json* document = field(record, "document");
    if (!document || !document->is_object()) return bad("document", "an object");
    s.document = *document;
    if (const json* start = field(record, "start_event")) {
        if (!start->is_object()) return bad("start_event", "an object");
        s.start_event = *start;
    }
    s.name = s.id;
    return read_string(record, "name", s.name);
}

Status read_exit(const json& record, PersistedSandbox& s) {
    NUCLEUS_TRY(read_integer(record, "exit_code", s.exit_code, INT_MIN, INT_MAX));
    NUCLEUS_TRY(read_integer(record, "signal", s.signal, 1, 64));
    NUCLEUS_TRY(read_string(record, "reason", s.reason));
    NUCLEUS_TRY(read_bytes(record, "error", s.error));
    return read_string(record, "finished_at", s.finished_at);
}

Status read_process(const json& record, PersistedSandbox& s) {
    NUCLEUS_TRY(read_integer(record, "pid", s.pid, 1, INT_MAX));
    std::optional<unsigned long long> ticks;
    NUCLEUS_TRY(read_integer(record, "start_ticks", ticks, 0, LLONG_MAX));
    s.start_ticks = ticks.value_or(0);
    NUCLEUS_TRY(read_integer(record, "id_slot", s.id_slot, 0, UINT32_MAX));
    NUCLEUS_TRY(read_bytes(record, "cgroup", s.cgroup_path));
    if (const json* adopted = field(record, "adopted")) {
        if (!adopted->is_boolean()) return bad("adopted", "true or false");
        s.adopted = adopted->get<bool>();
    }
    return read_pipes(record, s.pipes);
}

}  // namespace

Result<PersistedSandbox> decode_record(const json& record) {
    if (!record.is_object()) return Error::plain("a record must be a JSON object");
    PersistedSandbox s;
    NUCLEUS_TRY(read_identity(record, s));
    NUCLEUS_TRY(read_command(record, s.command));
    NUCLEUS_TRY(read_string(record, "mode", s.mode));
    NUCLEUS_TRY(read_string(record, "created_at", s.created_at));
    NUCLEUS_TRY(read_string(record, "started_at", s.started_at));
    NUCLEUS_TRY(read_exit(record, s));
    NUCLEUS_TRY(read_process(record, s));
    return s;
}

}  // namespace nucleus::core::daemon
