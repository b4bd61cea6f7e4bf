// The spec keys: every setting of a sandbox, declared once.
//
// One row per setting gives its document key (the long flag name in
// snake_case), its command-line names, its help line, its group, where it
// may be given (the command line, the daemon's API) and in which modes, how
// it is resolved against the host (paths, files, descriptors, limits) and
// how its resolved value is applied to a SandboxSpec. From this one table
// come the `nucleus run` / `nucleus create` flags (core/cli/spec_flags.cpp),
// the keys a config document or an API request may hold
// (core/spec/document.cpp), `--help`, the validation, and the README's flag
// tables (core/spec/markdown.cpp, checked for drift by a unit test).
//
// Rows are applied in table order, so a key that depends on another comes
// after it (memory_swap after memory, seccomp_profile after cap_add and
// caps_policy); checks that span keys run once all are applied.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/modes.hpp"
#include "io/error.hpp"

namespace nucleus::core {

struct SandboxSpec;

// The README and --help sections, in this order.
enum class KeyGroup { Sandbox, Filesystem, Process, Resources, Security, Output };
std::string_view group_title(KeyGroup group);

enum class KeyShape {
    Switch,  // --flag: true
    Value,  // --flag VALUE
    List,  // --flag VALUE, repeatable
};

// Where a key may be given.
enum Surface : uint8_t {
    on_run = 1,  // `nucleus run` flags and documents
    on_daemon = 2,  // `nucleus create` and the daemon's API
    anywhere = on_run | on_daemon,
};

// Bit per ServiceMode.
using ModeSet = uint8_t;
constexpr ModeSet mode_bit(ServiceMode m) { return static_cast<ModeSet>(1u << static_cast<unsigned>(m)); }
constexpr ModeSet all_modes = 0b111;

struct SpecKey;

// Resolution against the host (may read files, descriptors and limits):
// rewrites the document's value for this key, in place, into its resolved
// form (canonical paths, file contents inline, environment values taken).
// Resolving a resolved document changes nothing, so recovery and restarts
// can skip it and never depend on host files that are gone.
struct ResolveContext {
    // A client resolving for the daemon: checks that depend on who runs the
    // sandbox (can its setup identity traverse a path?) are the daemon's.
    bool for_daemon = false;
};
using ResolveFn = Status (*)(nlohmann::json& document, const SpecKey& key, const ResolveContext& context);

// Pure: the resolved value to the spec. Never touches the host.
using ApplyFn = Status (*)(const nlohmann::json& value, SandboxSpec& spec, const SpecKey& key);

struct SpecKey {
    std::string_view key = {};  // document key, the long flag in snake_case
    std::string_view flags = {};  // CLI11 names: "-v,--volume"; empty: a document key only
    std::string_view value_name = {};  // "SRC:DST[:ro|rw]"; empty for switches
    std::string_view help = {};  // one line for --help
    std::string_view doc = {};  // the README's longer text; empty: `help`
    KeyGroup group = KeyGroup::Sandbox;
    KeyShape shape = KeyShape::Value;
    uint8_t surfaces = anywhere;
    ModeSet modes = all_modes;  // modes in which the key may be given
    std::string_view mode_rule = {};  // the refusing rule's name (audit records)
    ResolveFn resolve = nullptr;  // null: the value needs no host
    ApplyFn apply = nullptr;
};

// Every key, in application order.
std::span<const SpecKey> spec_keys();
const SpecKey* find_spec_key(std::string_view key);

// "workspace_mode (--workspace-mode)": names a key for both kinds of user.
std::string key_label(const SpecKey& key);
std::string key_label(std::string_view key);
// The long flag, "--workspace-mode".
std::string long_flag(const SpecKey& key);

// The groups' rows (core/spec/keys_*.cpp).
std::span<const SpecKey> sandbox_keys();
std::span<const SpecKey> network_keys();  // egress allow rules, right after `network`
std::span<const SpecKey> filesystem_keys();
std::span<const SpecKey> process_keys();
std::span<const SpecKey> resource_keys();
std::span<const SpecKey> security_keys();
std::span<const SpecKey> output_keys();

}  // namespace nucleus::core
