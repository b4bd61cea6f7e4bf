// Sandboxes on a Nix store closure, without Nix: the manifest's parser and
// writer, NAR hashing (against vectors from Nix's own nix-hash), closure
// verification, gc roots, the rootfs_closure spec key, production mode and
// the launch plan's root. tests/nix/nix_test.cpp runs the same on a real
// store.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/closure_attestation.hpp"
#include "core/closure_gcroot.hpp"
#include "core/closure_manifest.hpp"
#include "core/modes.hpp"
#include "core/spec.hpp"
#include "isolation/kernel_abi.hpp"
#include "isolation/launch_plan.hpp"

using namespace nucleus::core;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A fake store outside /tmp (the runtime refuses a store the sandbox's /tmp
// would hide), with two store paths; removed at the end.
struct FakeStore {
    fs::path root;
    std::string store, tool, lib;
    FakeStore() {
        std::string pattern = "/var/tmp/nucleus-closure-test-XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        root = pattern;
        store = (root / "store").string();
        tool = store + "/0c7c9gfyhs4n2zhh2fdxkmjyc3bw2d4v-tool-1.0";
        lib = store + "/1b2v0pjbx1sgj9jxh5gyf1ik7hbq8cni-lib-2.0";
        fs::create_directories(tool + "/bin");
        fs::create_directories(lib + "/lib");
        std::ofstream(tool + "/bin/tool") << "#!/bin/sh\n";
        ::chmod((tool + "/bin/tool").c_str(), 0755);
        std::ofstream(lib + "/lib/libx.so") << "lib";
    }
    ~FakeStore() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    json path_entry(const std::string& path, const std::vector<std::string>& refs) const {
        auto d = nar_digest(path);
        REQUIRE(d.ok());
        return {{"path", path}, {"nar_hash", "sha256:" + d->sha256_nix32}, {"nar_size", d->size}, {"references", refs}};
    }
    json manifest() const {
        return {{"nucleus_closure_manifest", 1},
                {"name", "test"},
                {"store_dir", store},
                {"roots", {tool}},
                {"entrypoint", {tool + "/bin/tool", "--serve"}},
                {"env", {{"PATH", tool + "/bin"}, {"MODE", "prod"}}},
                {"paths", {path_entry(tool, {lib}), path_entry(lib, {})}}};
    }
    std::string write(const json& doc, const std::string& name = "manifest.json") const {
        std::string file = (root / name).string();
        std::ofstream(file) << doc.dump();
        return file;
    }
};

std::string parse_error(const json& doc) {
    auto m = parse_closure_manifest(doc.dump(), "m.json");
    REQUIRE(!m.ok());
    return m.error().describe();
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Sets an environment variable for one scope.
struct ScopedEnv {
    std::string name;
    std::optional<std::string> old;
    ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
        if (const char* v = std::getenv(name.c_str())) old = v;
        ::setenv(name.c_str(), value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (old) ::setenv(name.c_str(), old->c_str(), 1);
        else ::unsetenv(name.c_str());
    }
};

}  // namespace

TEST_CASE("NAR hashes match Nix's own (nix-hash --type sha256) and base32 is Nix's") {
    FakeStore s;
    std::ofstream(s.root / "f") << "hello\n";
    fs::create_directories(s.root / "d/sub");
    std::ofstream(s.root / "d/sub/a") << "x";
    ::chmod((s.root / "d/sub/a").c_str(), 0755);
    fs::create_symlink("../f", s.root / "d/link");
    // Vectors computed by nix-hash 2.8 for the same two trees.
    CHECK(nar_digest((s.root / "f").string())->sha256_hex ==
          "1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13");
    CHECK(nar_digest((s.root / "d").string())->sha256_hex ==
          "163d698f40b8330dc61c65a2fd99ebe176069b94a2b5afcee13473b98db88f21");
    const unsigned char empty_sha[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
                                         0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
                                         0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    CHECK(nix_base32(empty_sha, 32) == "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
}

TEST_CASE("a closure manifest parses, round-trips, and verifies against the store") {
    FakeStore s;
    auto m = parse_closure_manifest(s.manifest().dump(), "m.json");
    REQUIRE(m.ok());
    CHECK(m->store_dir == s.store);
    CHECK(m->paths.size() == 2);
    CHECK(m->paths[0].path == s.tool);  // path order
    CHECK(m->entrypoint == std::vector<std::string>{s.tool + "/bin/tool", "--serve"});
    CHECK(m->env == std::vector<std::pair<std::string, std::string>>{{"MODE", "prod"}, {"PATH", s.tool + "/bin"}});
    auto again = parse_closure_manifest(closure_manifest_text(*m), "again");
    REQUIRE(again.ok());
    CHECK(closure_manifest_text(*again) == closure_manifest_text(*m));
    auto diffs = verify_closure(*m);
    REQUIRE(diffs.ok());
    CHECK(diffs->empty());

    std::ofstream(s.lib + "/lib/libx.so", std::ios::app) << "!";
    fs::remove_all(s.tool + "/bin");
    diffs = verify_closure(*m);
    REQUIRE(diffs.ok());
    REQUIRE(diffs->size() == 2);
    CHECK(has((*diffs)[0], "modified: " + s.tool + " (nar size"));
    CHECK(has((*diffs)[1], "modified: " + s.lib));
    fs::remove_all(s.lib);
    CHECK(verify_closure(*m)->back() == "missing: " + s.lib);
}

TEST_CASE("bad manifests are refused with the reason") {
    FakeStore s;
    json doc = s.manifest();
    auto with = [&](const std::string& key, json value) {
        json d = doc;
        d[key] = std::move(value);
        return d;
    };
    CHECK(has(parse_error(with("nucleus_closure_manifest", 2)), "not a closure manifest"));
    CHECK(has(parse_error(with("extra", 1)), "unknown key"));
    CHECK(has(parse_error(with("store_dir", "relative")), "store_dir"));
    CHECK(has(parse_error(with("store_dir", "/nix/../etc")), "store_dir"));
    CHECK(has(parse_error(with("entrypoint", {"/bin/sh"})), "not inside any path of the closure"));
    CHECK(has(parse_error(with("roots", {s.store + "/00000000000000000000000000000000-x"})), "not among"));
    CHECK(has(parse_error(with("env", {{"A=B", "x"}})), "not a variable name"));
    json open = doc;
    open["paths"].erase(1);  // tool references lib, which is gone: not closed
    CHECK(has(parse_error(open), "does not list"));
    json escape = doc;
    escape["paths"][0]["path"] = s.store + "/../etc";
    CHECK(has(parse_error(escape), "not a store path"));
    json hash = doc;
    hash["paths"][0]["nar_hash"] = "md5:abc";
    CHECK(has(parse_error(hash), "nar_hash"));
    json twice = doc;
    twice["paths"].push_back(twice["paths"][0]);
    CHECK(has(parse_error(twice), "listed twice"));
    CHECK(!parse_closure_manifest("{not json", "m").ok());
    CHECK(!parse_closure_manifest("[]", "m").ok());
    // Non-UTF-8 bytes in env values travel as {"base64": ...} (io/bytes_json.hpp).
    json bytes = with("env", {{"RAW", {{"base64", "/w=="}}}});
    auto m = parse_closure_manifest(bytes.dump(), "m");
    REQUIRE(m.ok());
    CHECK(m->env[0].second == std::string("\xff", 1));
    CHECK(parse_closure_manifest(closure_manifest_text(*m), "m")->env[0].second == std::string("\xff", 1));
}

TEST_CASE("the manifest from a builder's structured attributes (what mk-rootfs.nix runs)") {
    FakeStore s;
    json attrs = {{"closure",
                   {{{"path", s.lib},
                     {"narHash", s.path_entry(s.lib, {})["nar_hash"]},
                     {"narSize", 1},
                     {"references", json::array()}}}},
                  {"manifest",
                   {{"name", "x"},
                    {"storeDir", s.store},
                    {"roots", {s.lib}},
                    {"entrypoint", nullptr},
                    {"env", {{"PATH", s.lib + "/bin"}}}}},
                  {"outputs", {{"out", (s.root / "out.json").string()}}}};
    auto m = closure_manifest_from_attrs(attrs);
    INFO((m.ok() ? "" : m.error().describe()));
    REQUIRE(m.ok());
    CHECK(m->paths.size() == 1);
    CHECK(m->roots == std::vector<std::string>{s.lib});
    std::ofstream(s.root / "attrs.json") << attrs.dump();
    CHECK(closure_manifest_command((s.root / "attrs.json").string(), "") == 0);
    CHECK(parse_closure_manifest(nucleus::io::read_file((s.root / "out.json").string()).value(), "out").ok());
    attrs["closure"][0]["narHash"] = "sha256:zz";
    CHECK(!closure_manifest_from_attrs(attrs).ok());
}

TEST_CASE("gc roots: one per sandbox under NIX_STATE_DIR/gcroots/nucleus, removed after; none without Nix") {
    FakeStore s;
    auto m = load_closure_manifest(s.write(s.manifest()));
    REQUIRE(m.ok());
    {
        ScopedEnv state("NIX_STATE_DIR", (s.root / "nix-state").string());
        auto none = add_closure_gcroot("abc", *m);
        REQUIRE(none.ok());
        CHECK(none->empty());  // no gcroots directory: no Nix to collect anything
        fs::create_directories(s.root / "nix-state/gcroots");
        auto dir = add_closure_gcroot("abc", *m);
        REQUIRE(dir.ok());
        CHECK(*dir == (s.root / "nix-state/gcroots/nucleus/abc").string());
        CHECK(fs::read_symlink(*dir + "/" + fs::path(s.tool).filename().string()) == s.tool);
        CHECK(!add_closure_gcroot("abc", *m).ok());  // one per sandbox id
        CHECK(remove_closure_gcroot("abc").ok());
        CHECK(!fs::exists(*dir));
        CHECK(remove_closure_gcroot("abc").ok());  // absent is fine
        CHECK(!add_closure_gcroot("../x", *m).ok());
        // A manifest in the store: one symlink to its store path.
        std::string in_store = s.store + "/2c7c9gfyhs4n2zhh2fdxkmjyc3bw2d4v-test-closure.json";
        std::ofstream(in_store) << s.manifest().dump();
        auto stored = load_closure_manifest(in_store);
        REQUIRE(stored.ok());
        auto link = add_closure_gcroot("def", *stored);
        REQUIRE(link.ok());
        CHECK(fs::is_symlink(*link));
        CHECK(fs::read_symlink(*link) == in_store);
        CHECK(remove_closure_gcroot("def").ok());
        CHECK(!fs::exists(fs::symlink_status(*link)));
    }
}

TEST_CASE("rootfs_closure in a spec: entrypoint as the default command, env under -e, exclusive with rootfs") {
    FakeStore s;
    std::string file = s.write(s.manifest());
    auto spec = spec_from_document(json{{"rootfs_closure", file}, {"env", {"MODE=dev"}}});
    REQUIRE(spec.ok());
    REQUIRE(spec->rootfs_closure);
    CHECK(spec->command == std::vector<std::string>{s.tool + "/bin/tool", "--serve"});
    auto mode = std::find(spec->env.begin(), spec->env.end(), "MODE=prod");
    auto dev = std::find(spec->env.begin(), spec->env.end(), "MODE=dev");
    CHECK(mode < dev);  // the manifest first, so -e wins
    auto given = spec_from_document(json{{"rootfs_closure", file}, {"command", {"sh"}}});
    CHECK(given->command == std::vector<std::string>{"sh"});
    CHECK(spec_from_document(json{{"rootfs_closure", file}, {"verify_rootfs_attestation", true}}).ok());

    auto both = spec_from_document(json{{"rootfs_closure", file}, {"rootfs", "/"}, {"command", {"x"}}});
    CHECK(!both.ok());
    CHECK(has(spec_from_document(json{{"rootfs_closure", (s.root / "none.json").string()}}).error().describe(),
              "rootfs_closure (--rootfs-closure)"));
    CHECK(!spec_from_document(json{{"rootfs_closure", file}, {"volume", {"/etc:" + s.store}}}).ok());
    // A store below a mount the runtime makes would be hidden by it.
    json tmp = s.manifest();
    tmp["store_dir"] = "/tmp/store";
    tmp["roots"] = json::array();
    tmp["entrypoint"] = nullptr;
    tmp["paths"] = json::array({{{"path", "/tmp/store/0c7c9gfyhs4n2zhh2fdxkmjyc3bw2d4v-x"},
                                 {"nar_hash", tmp["paths"][0]["nar_hash"]},
                                 {"nar_size", 1}}});
    fs::create_directories("/tmp/store/0c7c9gfyhs4n2zhh2fdxkmjyc3bw2d4v-x");
    auto under_tmp = spec_from_document(json{{"rootfs_closure", s.write(tmp, "tmp.json")}, {"command", {"x"}}});
    fs::remove_all("/tmp/store");
    REQUIRE(!under_tmp.ok());
    CHECK(has(under_tmp.error().describe(), "collides with the runtime's /tmp"));
}

TEST_CASE("production mode takes a closure as its immutable root") {
    FakeStore s;
    auto spec = spec_from_document(
        json{{"rootfs_closure", s.write(s.manifest())}, {"service_mode", "production"}, {"memory", "64m"}});
    REQUIRE(spec.ok());
    HostFacts host;
    host.cgroup2_mount = "/sys/fs/cgroup";
    host.controllers = {"cpu", "io", "memory", "pids"};
    host.landlock_abi = 7;
    CHECK(check_mode_rules(*spec, host).ok());
    spec->rootfs_closure.reset();
    CHECK(has(check_mode_rules(*spec, host).error().describe(), "rootfs-required"));
}

TEST_CASE("the launch plan of a closure root: the store read-only, rights on the closure only, none on /") {
    FakeStore s;
    nucleus::isolation::LaunchRequest r;
    r.staging_dir = "/stage";
    r.hostname = "box";
    r.argv = {"/bin/true"};
    r.maps.uid = {{0, 1000000000, 65536}};
    r.maps.gid = {{0, 1000000000, 65536}};
    r.closure = nucleus::isolation::ClosureRoot{s.store, {s.tool, s.lib, s.tool + "/bin/tool"}};
    auto plan = nucleus::isolation::LaunchPlan::build(r);
    REQUIRE(plan.ok());
    const auto& c = (*plan)->child;
    bool bound = false, nsswitch = false;
    for (size_t i = 0; i < c.mount_count; ++i) {
        std::string target = c.mounts[i].target;
        if (target == "/stage" + s.store) bound = c.mounts[i].kind == nucleus::isolation::MountKind::Bind;
        if (target == "/stage/etc/nsswitch.conf") nsswitch = true;
    }
    CHECK(bound);
    CHECK(nsswitch);
    if (!(*plan)->landlock.enforced) SKIP("Landlock is not available here: " + (*plan)->landlock.reason);
    std::map<std::string, uint64_t> rules;
    for (size_t i = 0; i < c.landlock_rule_count; ++i) rules[c.landlock_rules[i].path] = c.landlock_rules[i].access;
    namespace fs_rights = nucleus::kabi::landlock_fs;
    CHECK(!rules.count("/"));
    CHECK(!rules.count(s.store));
    CHECK((rules.at(s.tool) & (fs_rights::execute | fs_rights::read_dir)) ==
          (fs_rights::execute | fs_rights::read_dir));
    // A file gets file rights only (the kernel refuses directory rights on a file).
    CHECK(rules.at(s.tool + "/bin/tool") == (fs_rights::execute | fs_rights::read_file));
    CHECK(rules.count("/etc"));
}
