// A Nix store closure as a sandbox's root filesystem: its manifest.
//
// `lib.mkRootfs` (nix/mk-rootfs.nix) builds the manifest with
// `nucleus rootfs closure-manifest --attrs FILE`, from what Nix hands a
// builder with structured attributes and exportReferencesGraph (the graph
// nixpkgs' closureInfo is made from): every store path of the closure with
// its NAR hash, NAR size and references. The manifest, one JSON object:
//
//   {
//     "nucleus_closure_manifest": 1,
//     "name": "python-env",
//     "store_dir": "/nix/store",
//     "roots": ["/nix/store/<hash>-python3-3.11.9"],     what was asked for
//     "entrypoint": ["/nix/store/<hash>-python3-3.11.9/bin/python3"] or null,
//     "env": {"PATH": "/nix/store/<hash>-python3-3.11.9/bin"},
//     "paths": [{"path": "/nix/store/<hash>-...", "nar_hash": "sha256:<nix base32>",
//                "nar_size": 123456, "references": ["/nix/store/..."]}, ...]
//   }
//
// Strings that are bytes (entrypoint arguments, env values) use
// io/bytes_json.hpp's encoding. The parser is strict: every path is a
// direct child of store_dir with a store path's name, listed once, and the
// set is closed under references (a closure that is not closed would fail
// at run time, behind Landlock, with a confusing EACCES).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "io/error.hpp"

namespace nucleus::core {

inline constexpr size_t max_closure_manifest_bytes = size_t{64} << 20;

struct ClosurePath {
    std::string path;
    std::string nar_hash;  // as written: "sha256:<base32 or hex>" or "sha256-<base64>"
    uint64_t nar_size = 0;
    std::vector<std::string> references;
};

struct ClosureManifest {
    std::string file;  // where it was read from ("" when parsed from text)
    std::string sha256;  // of the manifest's bytes: what audit records pin
    std::string name;
    std::string store_dir;
    std::vector<std::string> roots;
    std::vector<std::string> entrypoint;  // empty: none
    std::vector<std::pair<std::string, std::string>> env;  // in key order
    std::vector<ClosurePath> paths;  // in path order
};

// Parses and validates a manifest's text; `origin` names it in errors.
Result<ClosureManifest> parse_closure_manifest(std::string_view text, const std::string& origin);

// Reads (bounded, a regular file) and parses the manifest at `path`, and
// checks that every listed store path is there on this host.
Result<ClosureManifest> load_closure_manifest(const std::string& path);

// The manifest's canonical text (sorted keys, paths in order, a final newline).
std::string closure_manifest_text(const ClosureManifest& manifest);

// `nucleus rootfs closure-manifest --attrs FILE [-o OUT]`: the manifest from
// a structured-attributes builder's .attrs.json ({"closure": [...],
// "manifest": {"name", "storeDir", "roots", "entrypoint", "env"},
// "outputs": {"out": PATH}}), written to OUT (default outputs.out).
Result<ClosureManifest> closure_manifest_from_attrs(const nlohmann::json& attrs);
int closure_manifest_command(const std::string& attrs_file, const std::string& output);

// Whether `path` looks like a closure manifest rather than a rootfs
// directory (a regular file), for `nucleus rootfs verify`.
bool is_closure_manifest_file(const std::string& path);

}  // namespace nucleus::core
