#include "core/policies.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/attestation.hpp"
#include "core/toml.hpp"
#include "io/unique_fd.hpp"
#include "isolation/capabilities.hpp"
#include "isolation/kernel_abi.hpp"

namespace nucleus::core {

using nlohmann::json;

void toml_internal_error() noexcept {
    static const char message[] =
        "nucleus: error: the TOML parser (toml++ 3.3) reached an internal error on this input "
        "(non-ASCII text where it expects whitespace); write the document as JSON instead\n";
    (void)!::write(2, message, sizeof message - 1);
    ::_exit(125);
}

Result<std::string> read_policy_file(const std::string& path, const std::optional<std::string>& pinned,
                                     const std::string& what) {
    auto text = io::read_file(path, 4 << 20);
    if (!text) return std::move(text).error().wrap(what);
    if (pinned) {
        std::string want = *pinned;
        std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
        std::string have = sha256_hex(*text);
        if (have != want)
            return Error::plain(what + " " + path + ": SHA-256 is " + have + ", pinned " + want + " (file changed?)");
    }
    return text;
}

namespace {

Error at(const std::string& origin, const toml::node& node, const std::string& why) {
    const auto& where = node.source().begin;
    return Error::plain(origin + ":" + std::to_string(where.line) + ": " + why);
}

Result<toml::table> parse_toml(const std::string& text, const std::string& origin) {
    try {
        return toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        return Error::plain(origin + ":" + std::to_string(e.source().begin.line) +
                            ": invalid TOML: " + std::string(e.description()));
    }
}

Status only_keys(const toml::table& table, std::initializer_list<const char*> keys, const std::string& origin) {
    for (const auto& [key, node] : table) {
        std::string_view name = key.str();  // structured bindings are not capturable before C++20 in clang 14
        if (std::find_if(keys.begin(), keys.end(), [name](const char* k) { return name == k; }) == keys.end())
            return at(origin, node, "unknown key \"" + std::string(name) + "\"");
    }
    return {};
}

Result<uint64_t> capability_list(const toml::table& table, const char* key, const std::string& origin) {
    const toml::node* node = table.get(key);
    if (!node) return uint64_t{0};
    const toml::array* list = node->as_array();
    if (!list) return at(origin, *node, std::string(key) + " must be a list of capability names");
    uint64_t mask = 0;
    for (const auto& item : *list) {
        auto name = item.value<std::string>();
        if (!name) return at(origin, item, std::string(key) + " must list capability names as strings");
        auto cap = isolation::capability_from_name(*name);
        if (!cap) return at(origin, item, "unknown capability \"" + *name + "\"");
        mask |= 1ULL << *cap;
    }
    return mask;
}

}  // namespace

Result<CapsPolicy> parse_caps_policy(const std::string& text, const std::string& origin) {
    auto table = parse_toml(text, origin);
    if (!table) return std::move(table).error();
    NUCLEUS_TRY(only_keys(*table, {"bounding", "ambient"}, origin));
    CapsPolicy policy;
    auto bounding = capability_list(*table, "bounding", origin);
    if (!bounding) return std::move(bounding).error();
    auto ambient = capability_list(*table, "ambient", origin);
    if (!ambient) return std::move(ambient).error();
    policy.bounding = *bounding;
    policy.ambient = *ambient;
    if (policy.ambient & ~policy.bounding)
        return Error::plain(origin + ": ambient lists " +
                            isolation::capability_list(policy.ambient & ~policy.bounding) +
                            ", which bounding does not allow");
    return policy;
}

std::optional<std::pair<uint64_t, int>> landlock_access_from_name(const std::string& name) {
    namespace fs = kabi::landlock_fs;
    static const std::vector<std::tuple<const char*, uint64_t, int>> names = {
        {"execute", fs::execute, 1},     {"write_file", fs::write_file, 1}, {"read_file", fs::read_file, 1},
        {"read_dir", fs::read_dir, 1},   {"remove_dir", fs::remove_dir, 1}, {"remove_file", fs::remove_file, 1},
        {"make_char", fs::make_char, 1}, {"make_dir", fs::make_dir, 1},     {"make_reg", fs::make_reg, 1},
        {"make_sock", fs::make_sock, 1}, {"make_fifo", fs::make_fifo, 1},   {"make_block", fs::make_block, 1},
        {"make_sym", fs::make_sym, 1},   {"refer", fs::refer, 2},           {"truncate", fs::truncate, 3},
        {"ioctl_dev", fs::ioctl_dev, 5},
    };
    for (const auto& [n, bit, abi] : names)
        if (name == n) return std::pair{bit, abi};
    return std::nullopt;
}

Result<LandlockPolicy> parse_landlock_policy(const std::string& text, const std::string& origin) {
    auto table = parse_toml(text, origin);
    if (!table) return std::move(table).error();
    NUCLEUS_TRY(only_keys(*table, {"min_abi", "rule"}, origin));
    LandlockPolicy policy;
    if (const toml::node* abi = table->get("min_abi")) {
        auto v = abi->value<int64_t>();
        if (!v || *v < 1 || *v > 64) return at(origin, *abi, "min_abi must be an integer from 1");
        policy.min_abi = static_cast<int>(*v);
    }
    const toml::node* rules = table->get("rule");
    if (!rules) return Error::plain(origin + ": no [[rule]] entries: a Landlock policy must grant something");
    const toml::array* list = rules->as_array();
    if (!list) return at(origin, *rules, "rule must be an array of tables ([[rule]])");
    for (const auto& node : *list) {
        const toml::table* rule = node.as_table();
        if (!rule) return at(origin, node, "each rule must be a table");
        NUCLEUS_TRY(only_keys(*rule, {"path", "access"}, origin));
        auto path = rule->get("path") ? rule->get("path")->value<std::string>() : std::nullopt;
        if (!path || path->empty() || (*path)[0] != '/') return at(origin, node, "rule.path must be an absolute path");
        const toml::node* access_node = rule->get("access");
        const toml::array* access = access_node ? access_node->as_array() : nullptr;
        if (!access || access->empty()) return at(origin, node, "rule.access must be a non-empty list of rights");
        LandlockPolicyRule parsed{*path, 0};
        for (const auto& item : *access) {
            auto name = item.value<std::string>();
            auto right = name ? landlock_access_from_name(*name) : std::nullopt;
            if (!right) return at(origin, item, "unknown Landlock right \"" + name.value_or("?") + "\"");
            if (right->second > policy.min_abi)
                return at(origin, item,
                          "\"" + *name + "\" needs Landlock ABI " + std::to_string(right->second) + "; raise min_abi");
            parsed.access |= right->first;
        }
        policy.rules.push_back(std::move(parsed));
    }
    return policy;
}

std::string profile_from_trace(const std::vector<std::string>& syscalls) {
    json profile = {{"defaultAction", "SCMP_ACT_ERRNO"},
                    {"defaultErrnoRet", 1},
                    {"architectures", {"SCMP_ARCH_X86_64"}},
                    {"syscalls", {{{"names", syscalls}, {"action", "SCMP_ACT_ALLOW"}}}}};
    return profile.dump(2) + "\n";
}

// ---- seccomp profiles (OCI runtime-spec / Docker JSON) ----

namespace {

int line_of(const std::string& text, size_t byte) {
    return 1 + static_cast<int>(
                   std::count(text.begin(), text.begin() + static_cast<long>(std::min(byte, text.size())), '\n'));
}

// An errno by its name ("EPERM"), as Podman's profiles give it.
std::optional<int> errno_from_name(const std::string& name) {
    for (int e = 1; e < 4096; ++e) {
        const char* n = ::strerrorname_np(e);
        if (n && name == n) return e;
    }
    return std::nullopt;
}

// The errno of an SCMP_ACT_ERRNO: errnoRet (OCI, Docker) as a number, or
// errno (Podman) as a name, which must agree when both are given.
Result<int> parse_errno(const json& number, const json& name, const std::string& where, const char* number_key,
                        const char* name_key) {
    std::optional<int> err;
    if (!number.is_null()) {
        if (!number.is_number_unsigned() || number.get<uint64_t>() > 4095)
            return Error::plain(where + ": " + number_key + " must be an errno number");
        err = number.get<int>();
    }
    if (!name.is_null()) {
        auto named = name.is_string() ? errno_from_name(name.get<std::string>()) : std::nullopt;
        if (!named) return Error::plain(where + ": " + name_key + " must be an errno name such as EPERM");
        if (err && *err != *named)
            return Error::plain(where + ": " + name_key + " " + name.get<std::string>() + " disagrees with " +
                                number_key + " " + std::to_string(*err));
        err = named;
    }
    return err.value_or(1);  // EPERM: what runc and Docker use when neither is given
}

Result<isolation::SeccompAction> parse_action(const json& action, int err, const std::string& where) {
    using Kind = isolation::SeccompAction::Kind;
    if (!action.is_string()) return Error::plain(where + ": action must be a string");
    std::string name = action.get<std::string>();
    if (name == "SCMP_ACT_ALLOW") return isolation::SeccompAction{Kind::Allow, 0};
    if (name == "SCMP_ACT_ERRNO") return isolation::SeccompAction{Kind::Errno, err};
    if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") return isolation::SeccompAction{Kind::KillThread, 0};
    if (name == "SCMP_ACT_KILL_PROCESS") return isolation::SeccompAction{Kind::KillProcess, 0};
    if (name == "SCMP_ACT_TRAP") return isolation::SeccompAction{Kind::Trap, 0};
    if (name == "SCMP_ACT_LOG") return isolation::SeccompAction{Kind::Log, 0};
    if (name == "SCMP_ACT_TRACE" || name == "SCMP_ACT_NOTIFY")
        return Error::plain(where + ": action " + name + " is not supported (it needs a tracer or a notifier)");
    return Error::plain(where + ": unknown action \"" + name + "\"");
}

Result<isolation::SeccompArgCondition> parse_arg(const json& arg, const std::string& where) {
    using Op = isolation::SeccompArgCondition::Op;
    if (!arg.is_object()) return Error::plain(where + ": each arg must be an object");
    for (const auto& [k, v] : arg.items())
        if (k != "index" && k != "value" && k != "valueTwo" && k != "op")
            return Error::plain(where + ": unknown arg field \"" + k + "\"");
    if (!arg.contains("index") || !arg["index"].is_number_unsigned() || arg["index"].get<unsigned>() > 5)
        return Error::plain(where + ": arg index must be 0-5");
    if (!arg.contains("value") || !arg["value"].is_number_unsigned())
        return Error::plain(where + ": arg value must be a number");
    static const std::vector<std::pair<const char*, Op>> ops = {
        {"SCMP_CMP_NE", Op::NotEqual},          {"SCMP_CMP_LT", Op::Less},
        {"SCMP_CMP_LE", Op::LessOrEqual},       {"SCMP_CMP_EQ", Op::Equal},
        {"SCMP_CMP_GE", Op::GreaterOrEqual},    {"SCMP_CMP_GT", Op::Greater},
        {"SCMP_CMP_MASKED_EQ", Op::MaskedEqual}};
    std::string op = arg.contains("op") && arg["op"].is_string() ? arg["op"].get<std::string>() : "";
    auto it = std::find_if(ops.begin(), ops.end(), [&](const auto& o) { return op == o.first; });
    if (it == ops.end()) return Error::plain(where + ": unknown arg op \"" + op + "\"");
    uint64_t two =
        arg.contains("valueTwo") && arg["valueTwo"].is_number_unsigned() ? arg["valueTwo"].get<uint64_t>() : 0;
    return isolation::SeccompArgCondition{arg["index"].get<unsigned>(), it->second, arg["value"].get<uint64_t>(), two};
}

bool native_arch(const std::string& arch) { return arch == "amd64" || arch == "x86_64" || arch == "SCMP_ARCH_X86_64"; }

std::vector<int> kernel_version() {
    utsname u{};
    ::uname(&u);
    std::vector<int> v;
    std::istringstream parts(u.release);
    for (std::string p; std::getline(parts, p, '.') && v.size() < 2;) v.push_back(std::atoi(p.c_str()));
    return v;
}

bool kernel_at_least(const std::string& min) {
    std::vector<int> want;
    std::istringstream parts(min);
    for (std::string p; std::getline(parts, p, '.') && want.size() < 2;) want.push_back(std::atoi(p.c_str()));
    return kernel_version() >= want;
}

// Docker's conditional rules: "includes" must all hold, "excludes" none.
bool rule_applies(const json& entry, uint64_t kept_caps) {
    auto caps_held = [&](const json& list, bool all) {
        bool any = false, every = true;
        for (const auto& c : list) {
            auto cap = c.is_string() ? isolation::capability_from_name(c.get<std::string>()) : std::nullopt;
            bool held = cap && (kept_caps & (1ULL << *cap));
            any = any || held;
            every = every && held;
        }
        return all ? every : any;
    };
    auto arch_match = [&](const json& list) {
        for (const auto& a : list)
            if (a.is_string() && native_arch(a.get<std::string>())) return true;
        return false;
    };
    if (entry.contains("includes") && entry["includes"].is_object()) {
        const json& inc = entry["includes"];
        if (inc.contains("caps") && !caps_held(inc["caps"], true)) return false;
        if (inc.contains("arches") && !arch_match(inc["arches"])) return false;
        if (inc.contains("minKernel") && inc["minKernel"].is_string() && !kernel_at_least(inc["minKernel"]))
            return false;
    }
    if (entry.contains("excludes") && entry["excludes"].is_object()) {
        const json& exc = entry["excludes"];
        if (exc.contains("caps") && caps_held(exc["caps"], false)) return false;
        if (exc.contains("arches") && arch_match(exc["arches"])) return false;
    }
    return true;
}

// "flags": SECCOMP_FILTER_FLAG_* names (OCI). LOG logs what the filter
// denies; TSYNC is what a new single-threaded process gets anyway. The rest
// would weaken the sandbox or need a notifier.
Status parse_profile_flags(const json& flags, const std::string& origin, SeccompProfile& profile) {
    if (flags.is_null()) return {};
    if (!flags.is_array()) return Error::plain(origin + ": flags must be a list");
    for (const auto& f : flags) {
        std::string name = f.is_string() ? f.get<std::string>() : f.dump();
        if (name == "SECCOMP_FILTER_FLAG_LOG") profile.log_denied = true;
        else if (name == "SECCOMP_FILTER_FLAG_TSYNC") continue;
        else if (name == "SECCOMP_FILTER_FLAG_SPEC_ALLOW")
            return Error::plain(origin +
                                ": flags: SECCOMP_FILTER_FLAG_SPEC_ALLOW is refused: it turns off the kernel's "
                                "speculative store bypass mitigation for the sandbox");
        else if (name == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
            return Error::plain(origin + ": flags: " + name +
                                " has no meaning here: it is for notifications, which are not supported");
        else return Error::plain(origin + ": flags: unknown flag " + name);
    }
    return {};
}

// Docker's and Podman's archMap: which sub-architectures a profile's
// architectures imply. The filter is built for this machine's (x86-64, and
// x32/i386 are refused by the runtime itself), so it only needs to be well formed.
Status check_arch_map(const json& map, const std::string& origin) {
    if (map.is_null()) return {};
    if (!map.is_array()) return Error::plain(origin + ": archMap must be a list");
    for (const auto& entry : map) {
        if (!entry.is_object()) return Error::plain(origin + ": archMap entries must be objects");
        for (const auto& [k, v] : entry.items())
            if (k != "architecture" && k != "subArchitectures")
                return Error::plain(origin + ": archMap: unknown field \"" + k + "\"");
    }
    return {};
}

// "includes"/"excludes" of Docker's conditional rules.
Status check_filter(const json& filter, const std::string& where, const char* name) {
    if (filter.is_null()) return {};
    if (!filter.is_object()) return Error::plain(where + ": " + name + " must be an object");
    for (const auto& [k, v] : filter.items())
        if (k != "caps" && k != "arches" && k != "minKernel")
            return Error::plain(where + ": " + name + ": unknown field \"" + k + "\"");
    return {};
}

}  // namespace

Result<SeccompProfile> parse_seccomp_profile(const std::string& text, const std::string& origin, uint64_t kept_caps) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        return Error::plain(origin + ":" + std::to_string(line_of(text, e.byte)) + ": invalid JSON: " + e.what());
    } catch (const json::exception& e) {  // e.g. out_of_range: a number too large for any type
        return Error::plain(origin + ": invalid JSON: " + e.what());
    }
    if (!doc.is_object()) return Error::plain(origin + ": a seccomp profile must be a JSON object");
    // OCI runtime-spec, Docker and Podman fields. listenerPath and
    // listenerMetadata belong to SCMP_ACT_NOTIFY, which is not supported.
    static const std::vector<std::string> known = {"defaultAction", "defaultErrnoRet", "defaultErrno", "architectures",
                                                   "archMap",       "syscalls",        "flags"};
    for (const auto& [k, v] : doc.items()) {
        if (k == "listenerPath" || k == "listenerMetadata")
            return Error::plain(
                origin + ": field \"" + k +
                "\" has no meaning here: seccomp notifications (SCMP_ACT_NOTIFY) are not forwarded to an agent");
        if (std::find(known.begin(), known.end(), k) == known.end())
            return Error::plain(origin + ": unknown field \"" + k + "\"");
    }
    SeccompProfile profile;
    NUCLEUS_TRY(parse_profile_flags(doc.value("flags", json()), origin, profile));
    NUCLEUS_TRY(check_arch_map(doc.value("archMap", json()), origin));
    auto default_errno = parse_errno(doc.value("defaultErrnoRet", json()), doc.value("defaultErrno", json()), origin,
                                     "defaultErrnoRet", "defaultErrno");
    if (!default_errno) return std::move(default_errno).error();
    auto def = parse_action(doc.value("defaultAction", json()), *default_errno, origin + ": defaultAction");
    if (!def) return std::move(def).error();
    profile.policy.default_action = *def;
    profile.policy.skip_unknown_syscalls = false;
    if (doc.contains("architectures")) {
        if (!doc["architectures"].is_array()) return Error::plain(origin + ": architectures must be a list");
        bool native = false;
        for (const auto& a : doc["architectures"]) {
            if (!a.is_string()) return Error::plain(origin + ": architectures must be a list of strings");
            profile.architectures.push_back(a.get<std::string>());
            native = native || native_arch(a.get<std::string>());
        }
        if (!profile.architectures.empty() && !native)
            return Error::plain(origin + ": architectures does not include this machine's (SCMP_ARCH_X86_64)");
    }
    const json& syscalls = doc.value("syscalls", json::array());
    if (!syscalls.is_array()) return Error::plain(origin + ": syscalls must be a list");
    for (size_t i = 0; i < syscalls.size(); ++i) {
        const json& entry = syscalls[i];
        std::string where = origin + ": syscalls[" + std::to_string(i) + "]";
        if (!entry.is_object()) return Error::plain(where + ": must be an object");
        static const std::vector<std::string> entry_keys = {"names", "name",    "action",   "errnoRet", "errno",
                                                            "args",  "comment", "includes", "excludes"};
        for (const auto& [k, v] : entry.items())
            if (std::find(entry_keys.begin(), entry_keys.end(), k) == entry_keys.end())
                return Error::plain(where + ": unknown field \"" + k + "\"");
        for (const char* filter : {"includes", "excludes"})
            NUCLEUS_TRY(check_filter(entry.value(filter, json()), where, filter));
        auto err =
            parse_errno(entry.value("errnoRet", json()), entry.value("errno", json()), where, "errnoRet", "errno");
        if (!err) return std::move(err).error();
        auto action = parse_action(entry.value("action", json()), *err, where);
        if (!action) return std::move(action).error();
        std::vector<isolation::SeccompArgCondition> conditions;
        for (const auto& arg : entry.value("args", json::array())) {
            auto c = parse_arg(arg, where);
            if (!c) return std::move(c).error();
            conditions.push_back(*c);
        }
        std::vector<std::string> names;
        if (entry.contains("names") && entry["names"].is_array())
            for (const auto& n : entry["names"])
                if (n.is_string()) names.push_back(n.get<std::string>());
        if (entry.contains("name") && entry["name"].is_string()) names.push_back(entry["name"].get<std::string>());
        if (names.empty()) return Error::plain(where + ": names must list at least one syscall");
        if (!rule_applies(entry, kept_caps)) continue;
        for (const auto& n : names) {
            if (!isolation::seccomp_knows_syscall(n)) return Error::plain(where + ": unknown syscall \"" + n + "\"");
            profile.policy.rules.push_back({n, *action, conditions});
        }
    }
    return profile;
}

}  // namespace nucleus::core
