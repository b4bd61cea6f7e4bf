#include "core/closure_manifest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/attestation.hpp"
#include "core/run.hpp"
#include "io/bytes_json.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::core {

using nlohmann::json;

namespace {

constexpr int manifest_version = 1;
constexpr size_t max_paths = 1 << 16;

// A store path's name: <32 chars of Nix's base32>-<name>, the name made of
// [A-Za-z0-9+-._?=] and not starting with a dot (Nix's checkName).
bool valid_store_name(std::string_view name) {
    static constexpr std::string_view base32 = "0123456789abcdfghijklmnpqrsvwxyz";
    if (name.size() < 34 || name.size() > 211 || name[32] != '-') return false;
    for (size_t i = 0; i < 32; ++i)
        if (base32.find(name[i]) == std::string_view::npos) return false;
    std::string_view rest = name.substr(33);
    if (rest.empty() || rest[0] == '.') return false;
    return std::all_of(rest.begin(), rest.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("+-._?=").find(c) != std::string_view::npos;
    });
}

bool valid_store_dir(const std::string& dir) {
    if (dir.size() < 2 || dir[0] != '/' || dir.back() == '/' || dir.find('\0') != std::string::npos) return false;
    return dir.find("//") == std::string::npos && dir.find("/./") == std::string::npos &&
           dir.find("/../") == std::string::npos && !dir.ends_with("/..") && !dir.ends_with("/.");
}

bool valid_hash(std::string_view h) {
    auto all = [](std::string_view s, std::string_view chars) {
        return !s.empty() &&
               std::all_of(s.begin(), s.end(), [&](char c) { return chars.find(c) != std::string_view::npos; });
    };
    if (h.starts_with("sha256:")) {
        std::string_view v = h.substr(7);
        return (v.size() == 52 && all(v, "0123456789abcdfghijklmnpqrsvwxyz")) ||
               (v.size() == 64 && all(v, "0123456789abcdef"));
    }
    if (h.starts_with("sha256-"))
        return h.size() == 7 + 44 &&
               all(h.substr(7), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=");
    return false;
}

bool valid_env_key(const std::string& key) {
    return !key.empty() && key.find('=') == std::string::npos && key.find('\0') == std::string::npos;
}

Result<std::string> get_string(const json& obj, const char* key, const std::string& where) {
    if (!obj.contains(key) || !obj.at(key).is_string())
        return Error::plain(where + ": \"" + key + "\" must be a string");
    return obj.at(key).get<std::string>();
}

Result<std::vector<std::string>> get_paths(const json& value, const std::string& where) {
    if (!value.is_array()) return Error::plain(where + " must be a list of store paths");
    std::vector<std::string> out;
    for (const auto& item : value) {
        if (!item.is_string()) return Error::plain(where + " must be a list of store paths");
        out.push_back(item.get<std::string>());
    }
    return out;
}

Status check_store_path(const std::string& path, const std::string& store_dir, const std::string& where) {
    if (!path.starts_with(store_dir + "/") || !valid_store_name(std::string_view(path).substr(store_dir.size() + 1)))
        return Error::plain(where + ": \"" + path + "\" is not a store path directly under " + store_dir);
    return {};
}

Result<ClosurePath> parse_path_entry(const json& item, const std::string& store_dir, size_t index) {
    std::string where = "paths[" + std::to_string(index) + "]";
    if (!item.is_object()) return Error::plain(where + " must be an object");
    ClosurePath p;
    auto path = get_string(item, "path", where);
    if (!path) return std::move(path).error();
    p.path = std::move(*path);
    NUCLEUS_TRY(check_store_path(p.path, store_dir, where));
    auto hash = get_string(item, "nar_hash", where);
    if (!hash) return std::move(hash).error();
    if (!valid_hash(*hash)) return Error::plain(where + ": nar_hash \"" + *hash + "\" is not a SHA-256 in Nix's forms");
    p.nar_hash = std::move(*hash);
    // Parsed text gives unsigned numbers; a built document may hold signed ones.
    const json* size = item.contains("nar_size") ? &item.at("nar_size") : nullptr;
    if (!size || !size->is_number_integer() || (size->is_number_unsigned() ? false : size->get<int64_t>() < 0))
        return Error::plain(where + ": nar_size must be a non-negative integer");
    p.nar_size = size->get<uint64_t>();
    if (item.contains("references")) {
        auto refs = get_paths(item.at("references"), where + ".references");
        if (!refs) return std::move(refs).error();
        p.references = std::move(*refs);
        std::sort(p.references.begin(), p.references.end());
    }
    return p;
}

Status parse_env(const json& doc, ClosureManifest& m) {
    if (!doc.contains("env") || doc.at("env").is_null()) return {};
    if (!doc.at("env").is_object()) return Error::plain("\"env\" must be an object of KEY: VALUE");
    for (const auto& [key, value] : doc.at("env").items()) {
        if (!valid_env_key(key)) return Error::plain("env: \"" + key + "\" is not a variable name");
        auto bytes = io::bytes_from_json(value, "env." + key);
        if (!bytes) return std::move(bytes).error();
        if (bytes->find('\0') != std::string::npos) return Error::plain("env." + key + ": NUL byte");
        m.env.emplace_back(key, std::move(*bytes));
    }
    return {};
}

Status parse_entrypoint(const json& doc, ClosureManifest& m) {
    if (!doc.contains("entrypoint") || doc.at("entrypoint").is_null()) return {};
    const json& e = doc.at("entrypoint");
    if (!e.is_array() || e.empty()) return Error::plain("\"entrypoint\" must be null or a non-empty list of arguments");
    for (const auto& arg : e) {
        auto bytes = io::bytes_from_json(arg, "entrypoint");
        if (!bytes) return std::move(bytes).error();
        if (bytes->find('\0') != std::string::npos) return Error::plain("entrypoint: NUL byte in an argument");
        m.entrypoint.push_back(std::move(*bytes));
    }
    // The program must be inside the closure: nothing else is executable there.
    const std::string& program = m.entrypoint[0];
    bool inside = std::any_of(m.paths.begin(), m.paths.end(), [&](const ClosurePath& p) {
        return program == p.path || program.starts_with(p.path + "/");
    });
    if (!inside) return Error::plain("entrypoint \"" + program + "\" is not inside any path of the closure");
    return {};
}

// Every reference and root is in the closure: it is closed.
Status check_closed(const ClosureManifest& m) {
    std::set<std::string> listed;
    for (const auto& p : m.paths)
        if (!listed.insert(p.path).second) return Error::plain("\"" + p.path + "\" is listed twice");
    for (const auto& p : m.paths)
        for (const auto& r : p.references)
            if (!listed.count(r))
                return Error::plain("\"" + p.path + "\" references \"" + r + "\", which the closure does not list");
    for (const auto& r : m.roots)
        if (!listed.count(r)) return Error::plain("root \"" + r + "\" is not among the closure's paths");
    return {};
}

Result<ClosureManifest> parse_document(const json& doc) {
    if (!doc.is_object()) return Error::plain("a closure manifest must be a JSON object");
    if (!doc.contains("nucleus_closure_manifest") || doc.at("nucleus_closure_manifest") != manifest_version)
        return Error::plain("not a closure manifest (\"nucleus_closure_manifest\": 1 is missing)");
    static const std::set<std::string> known = {
        "nucleus_closure_manifest", "name", "store_dir", "roots", "entrypoint", "env", "paths"};
    for (const auto& [key, value] : doc.items())
        if (!known.count(key)) return Error::plain("unknown key \"" + key + "\"");
    ClosureManifest m;
    auto name = get_string(doc, "name", "manifest");
    if (!name) return std::move(name).error();
    m.name = std::move(*name);
    auto store = get_string(doc, "store_dir", "manifest");
    if (!store) return std::move(store).error();
    if (!valid_store_dir(*store)) return Error::plain("store_dir \"" + *store + "\" is not a normalised absolute path");
    m.store_dir = std::move(*store);
    if (!doc.contains("paths") || !doc.at("paths").is_array() || doc.at("paths").empty())
        return Error::plain("\"paths\" must be a non-empty list");
    if (doc.at("paths").size() > max_paths) return Error::plain("more than " + std::to_string(max_paths) + " paths");
    for (size_t i = 0; i < doc.at("paths").size(); ++i) {
        auto p = parse_path_entry(doc.at("paths")[i], m.store_dir, i);
        if (!p) return std::move(p).error();
        m.paths.push_back(std::move(*p));
    }
    std::sort(m.paths.begin(), m.paths.end(),
              [](const ClosurePath& a, const ClosurePath& b) { return a.path < b.path; });
    if (doc.contains("roots")) {
        auto roots = get_paths(doc.at("roots"), "roots");
        if (!roots) return std::move(roots).error();
        m.roots = std::move(*roots);
    }
    NUCLEUS_TRY(check_closed(m));
    NUCLEUS_TRY(parse_env(doc, m));
    NUCLEUS_TRY(parse_entrypoint(doc, m));
    return m;
}

json document_of(const ClosureManifest& m) {
    json paths = json::array();
    for (const auto& p : m.paths)
        paths.push_back(
            {{"path", p.path}, {"nar_hash", p.nar_hash}, {"nar_size", p.nar_size}, {"references", p.references}});
    json env = json::object();
    for (const auto& [k, v] : m.env) env[k] = io::bytes_json(v);
    return {{"nucleus_closure_manifest", manifest_version},
            {"name", m.name},
            {"store_dir", m.store_dir},
            {"roots", m.roots},
            {"entrypoint", m.entrypoint.empty() ? json(nullptr) : io::bytes_json_array(m.entrypoint)},
            {"env", env},
            {"paths", paths}};
}

Result<std::string> read_bounded(const std::string& path) {
    auto fd = io::open_fd(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (!fd) return std::move(fd).error();
    struct stat st {};
    if (::fstat(fd->get(), &st) < 0) return Error::from_errno("fstat " + path);
    if (!S_ISREG(st.st_mode)) return Error::plain(path + ": not a regular file");
    return io::read_file(path, max_closure_manifest_bytes);
}

}  // namespace

Result<ClosureManifest> parse_closure_manifest(std::string_view text, const std::string& origin) {
    json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded()) return Error::plain(origin + ": not valid JSON");
    auto m = parse_document(doc);
    if (!m) return std::move(m).error().wrap(origin);
    m->sha256 = sha256_hex(text);
    return m;
}

Result<ClosureManifest> load_closure_manifest(const std::string& path) {
    auto text = read_bounded(path);
    if (!text) return std::move(text).error().wrap("reading the closure manifest");
    auto m = parse_closure_manifest(*text, path);
    if (!m) return m;
    m->file = path;
    for (const auto& p : m->paths) {
        struct stat st {};
        if (::lstat(p.path.c_str(), &st) < 0)
            return Error::from_errno(path + ": store path " + p.path + " is not on this host");
    }
    return m;
}

std::string closure_manifest_text(const ClosureManifest& m) { return io::dump_json(document_of(m), 1) + "\n"; }

Result<ClosureManifest> closure_manifest_from_attrs(const json& attrs) {
    if (!attrs.is_object() || !attrs.contains("closure") || !attrs.contains("manifest"))
        return Error::plain("the attributes need \"closure\" (exportReferencesGraph) and \"manifest\"");
    const json& spec = attrs.at("manifest");
    const json& closure = attrs.at("closure");
    if (!spec.is_object() || !closure.is_array())
        return Error::plain("\"manifest\" must be an object, \"closure\" a list");
    json doc = {{"nucleus_closure_manifest", manifest_version},
                {"name", spec.value("name", json("rootfs"))},
                {"store_dir", spec.value("storeDir", json("/nix/store"))},
                {"roots", spec.value("roots", json::array())},
                {"entrypoint", spec.value("entrypoint", json(nullptr))},
                {"env", spec.value("env", json::object())},
                {"paths", json::array()}};
    for (const auto& item : closure) {
        if (!item.is_object()) return Error::plain("closure entries must be objects");
        doc["paths"].push_back({{"path", item.value("path", json())},
                                {"nar_hash", item.value("narHash", json())},
                                {"nar_size", item.value("narSize", json())},
                                {"references", item.value("references", json::array())}});
    }
    auto m = parse_document(doc);
    if (!m) return std::move(m).error().wrap("building the closure manifest");
    return m;
}

int closure_manifest_command(const std::string& attrs_file, const std::string& output) {
    auto fail = [](const Error& e) {
        std::fprintf(stderr, "nucleus: error: rootfs closure-manifest: %s\n", e.describe().c_str());
        return exit_runtime_error;
    };
    // As a derivation's builder (nix/mk-rootfs.nix) it gets no arguments:
    // Nix names the attributes file in the environment.
    std::string file = attrs_file;
    if (file.empty()) {
        const char* named = std::getenv("NIX_ATTRS_JSON_FILE");
        const char* top = std::getenv("NIX_BUILD_TOP");
        file = named && *named ? named : top && *top ? std::string(top) + "/.attrs.json" : "";
    }
    if (file.empty())
        return fail(Error::plain("no --attrs given, and not run as a Nix builder (no NIX_ATTRS_JSON_FILE)"));
    auto text = read_bounded(file);
    if (!text) return fail(text.error());
    json attrs = json::parse(*text, nullptr, false);
    if (attrs.is_discarded()) return fail(Error::plain(file + ": not valid JSON"));
    auto m = closure_manifest_from_attrs(attrs);
    if (!m) return fail(m.error());
    std::string out = output;
    if (out.empty() && attrs.contains("outputs") && attrs["outputs"].is_object() && attrs["outputs"].contains("out") &&
        attrs["outputs"]["out"].is_string())
        out = attrs["outputs"]["out"].get<std::string>();
    if (out.empty()) return fail(Error::plain("no -o given and no outputs.out in " + file));
    auto fd = io::open_fd(out, O_WRONLY | O_CREAT | O_EXCL, 0444);
    if (!fd) return fail(fd.error());
    if (auto st = io::write_all(fd->get(), closure_manifest_text(*m)); !st) {
        ::unlink(out.c_str());
        return fail(st.error());
    }
    std::printf("wrote %s: %zu store paths\n", out.c_str(), m->paths.size());
    return 0;
}

bool is_closure_manifest_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace nucleus::core
