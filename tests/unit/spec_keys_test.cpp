// The table of spec keys and what is derived from it: flags, documents,
// resolution against the host, the README's tables.
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/cli/command_split.hpp"
#include "core/cli/spec_flags.hpp"
#include "core/spec.hpp"
#include "core/spec/keys.hpp"
#include "core/spec/markdown.hpp"
#include "io/bytes_json.hpp"

using nlohmann::json;
using namespace nucleus;
using namespace nucleus::core;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/nucleus-spec-keys-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
};

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

std::string error_of(const json& doc, DocumentSource source = DocumentSource::Run) {
    auto spec = spec_from_document(doc, source);
    REQUIRE_FALSE(spec);
    return spec.error().message;
}

}  // namespace

TEST_CASE("spec keys: every key and flag is declared once, and every row can be applied") {
    std::set<std::string_view> keys;
    std::set<std::string> flags;
    for (const auto& key : spec_keys()) {
        CHECK(keys.insert(key.key).second);
        CHECK(key.apply != nullptr);
        CHECK_FALSE(key.help.empty());
        if (key.flags.empty()) continue;
        CHECK(long_flag(key) == std::string(key.flags.substr(key.flags.find("--"))));
        std::stringstream names{std::string(key.flags)};
        for (std::string name; std::getline(names, name, ',');) CHECK(flags.insert(name).second);
    }
    CHECK(spec_document_keys().size() == spec_keys().size());
}

TEST_CASE("spec keys: the README's flag tables are the generated ones") {
    std::ifstream in(NUCLEUS_SOURCE_DIR "/README.md");
    std::stringstream readme;
    readme << in.rdbuf();
    std::string text = readme.str();
    auto begin = text.find(flag_tables_begin);
    auto end = text.find(flag_tables_end);
    REQUIRE(begin != std::string::npos);
    REQUIRE(end != std::string::npos);
    begin += std::string(flag_tables_begin).size() + 1;
    INFO("regenerate with: build/nucleus docs flags, between the markers in README.md");
    CHECK(text.substr(begin, end - begin) == flag_tables_markdown());
}

TEST_CASE("spec keys: flags become a document, bytes included") {
    CLI::App app;
    cli::SpecFlags flags;
    cli::add_spec_flags(app, flags);
    std::vector<std::string> args = {"--memory", "64m",           "-e",     "A=\xff", "-e", "B=2", "--time-namespace",
                                     "-v",       "/tmp:/data:ro", "--pids", "64"};
    std::reverse(args.begin(), args.end());
    app.parse(args);
    auto doc = cli::spec_document(flags, app, {"printf", "x\xfe"});
    REQUIRE(doc);
    CHECK((*doc)["memory"] == "64m");
    CHECK((*doc)["time_namespace"] == true);
    CHECK((*doc)["env"][0] == json{{"base64", io::base64_encode("A=\xff")}});
    CHECK((*doc)["command"][1] == json{{"base64", io::base64_encode("x\xfe")}});
    CHECK_FALSE(doc->contains("cpus"));
    // The JSON text survives a round trip, and the bytes the spec.
    auto spec = spec_from_document(json::parse(io::dump_json(*doc)));
    REQUIRE(spec);
    CHECK(spec->env == std::vector<std::string>{"A=\xff", "B=2"});
    CHECK(spec->command[1] == "x\xfe");
    CHECK(spec->limits.pids_max == 64u);
    CHECK(spec->time_namespace);
}

TEST_CASE("spec keys: resolution makes host paths absolute, reads files, and is idempotent") {
    TempDir tmp;
    fs::create_directories(tmp.path / "ws");
    write(tmp.path / "vars.env", "# comment\nFROM_FILE=1\nSHARED=file\n");
    write(tmp.path / "caps.toml", "bounding = [\"NET_BIND_SERVICE\"]\nambient = []\n");
    auto cwd = fs::current_path();
    fs::current_path(tmp.path);
    ::setenv("NUCLEUS_SPEC_TEST_VAR", "from-host", 1);
    json doc = {{"workspace", "ws"},
                {"env_file", {"vars.env"}},
                {"env", {"SHARED=flag", "NUCLEUS_SPEC_TEST_VAR", "NUCLEUS_SPEC_TEST_UNSET"}},
                {"caps_policy", "caps.toml"},
                {"command", {"true"}}};
    auto resolved = resolve_document(doc);
    fs::current_path(cwd);
    REQUIRE(resolved);
    CHECK((*resolved)["workspace"] == (tmp.path / "ws").string());
    CHECK_FALSE(resolved->contains("env_file"));
    CHECK((*resolved)["env"] == json({"FROM_FILE=1", "SHARED=file", "SHARED=flag", "NUCLEUS_SPEC_TEST_VAR=from-host"}));
    CHECK((*resolved)["caps_policy"]["content"].get<std::string>().starts_with("bounding"));
    auto again = resolve_document(*resolved);
    REQUIRE(again);
    CHECK(*again == *resolved);

    // What recovery does: the files named are gone, the spec is rebuilt.
    fs::remove_all(tmp.path);
    auto spec = spec_from_resolved(*resolved);
    REQUIRE(spec);
    CHECK(spec->workspace == (tmp.path / "ws").string());
    CHECK(spec->env.size() == 4);
    REQUIRE(spec->caps_policy);
    CHECK(spec->caps_policy->sha256.size() == 64);
    CHECK_FALSE(spec_from_document(doc));  // resolving again would need them
}

TEST_CASE("spec keys: an inline policy is checked against its pin") {
    std::string profile = R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []})";
    json doc = {{"seccomp_profile", {{"content", profile}}},
                {"seccomp_profile_sha256", std::string(64, 'a')},
                {"command", {"true"}}};
    CHECK(error_of(doc).find("SHA-256 is") != std::string::npos);
    doc.erase("seccomp_profile_sha256");
    CHECK(spec_from_document(doc));
}

TEST_CASE("spec keys: --env-file refuses a NUL byte as -e does") {
    TempDir tmp;
    write(tmp.path / "nul.env", std::string("A=1\nB=x\0y\n", 10));
    auto message = error_of({{"env_file", {(tmp.path / "nul.env").string()}}, {"command", {"true"}}});
    CHECK(message.find("nul.env:2: contains a NUL byte") != std::string::npos);
    CHECK(error_of({{"env", {std::string("B=x\0y", 5)}}, {"command", {"true"}}}).find("NUL") != std::string::npos);
}

TEST_CASE("spec keys: volumes inside the workspace, the context or /run/secrets are refused up front") {
    TempDir tmp;
    fs::create_directories(tmp.path / "ws");
    write(tmp.path / "token", "t");
    std::string src = tmp.path.string();
    json base = {{"workspace", (tmp.path / "ws").string()}, {"command", {"true"}}};
    for (const char* mode : {"bind-rw", "copy-in-out"}) {
        json doc = base;
        doc["workspace_mode"] = mode;
        doc["volume"] = {src + ":/workspace/mnt/deep"};
        CHECK(error_of(doc).find("inside the workspace") != std::string::npos);
    }
    json secrets = {
        {"secret", {(tmp.path / "token").string()}}, {"volume", {src + ":/run/secrets/x"}}, {"command", {"true"}}};
    CHECK(error_of(secrets).find("inside the secrets") != std::string::npos);
    json plain = {{"volume", {src + ":/data"}}, {"command", {"true"}}};
    CHECK(spec_from_document(plain));
}

TEST_CASE("spec keys: a cgroup parent inside a sandbox's cgroup is refused") {
    std::string victim = "sandbox-" + std::string(32, 'a');
    auto message = error_of({{"cgroup_parent", "nucleus/" + victim + "/x"}, {"command", {"true"}}});
    CHECK(message.find("inside the cgroup of sandbox aaaaaaaaaaaa") != std::string::npos);
    CHECK(spec_from_document({{"cgroup_parent", "nucleus/sandbox-notours"}, {"command", {"true"}}}));
}

TEST_CASE("spec keys: the daemon refuses what only nucleus run may name") {
    for (const char* key : {"events_fd", "env_fd", "log_dir", "events_jsonl", "seccomp_log"}) {
        json doc = {{key, "x"}, {"command", {"true"}}};
        CHECK(error_of(doc, DocumentSource::Daemon).find("cannot be used through the daemon") != std::string::npos);
    }
}

TEST_CASE("spec keys: config text nested too deep is refused before parsing") {
    std::string deep(100000, '[');
    for (const char* format : {"json", "toml"}) {
        auto parsed = parse_config_text(deep, format, "config-fd 3");
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().message == "config-fd 3: nested more than 64 levels deep");
    }
    CHECK(parse_config_text(R"({"a": [[["ok"]]]})", "json", "x"));
}

TEST_CASE("spec keys: the command splits off at --, or at the first word after flags and positionals") {
    CLI::App app;
    cli::SpecFlags flags;
    cli::add_spec_flags(app, flags);
    auto takes = cli::options_taking_values(app);
    CHECK(takes.count("-e"));
    CHECK(takes.count("--memory"));
    CHECK_FALSE(takes.count("--time-namespace"));
    auto split = [&](std::vector<std::string> words, int positionals) {
        std::vector<char*> argv;
        for (auto& w : words) argv.push_back(w.data());
        return cli::split_command(static_cast<int>(argv.size()), argv.data(), 1, takes, positionals);
    };
    auto run = split({"nucleus", "run", "-e", "X=1", "--time-namespace", "sh", "-c", "echo"}, 0);
    CHECK(run.parse_argc == 5);
    CHECK(run.command == std::vector<std::string>{"sh", "-c", "echo"});
    auto dashes = split({"nucleus", "run", "--memory", "1g", "--", "-weird"}, 0);
    CHECK(dashes.parse_argc == 4);
    CHECK(dashes.command == std::vector<std::string>{"-weird"});
    auto exec = split({"nucleus", "exec", "-e", "A=1", "job", "ls", "-l"}, 1);
    CHECK(exec.parse_argc == 5);
    CHECK(exec.command == std::vector<std::string>{"ls", "-l"});
    auto none = split({"nucleus", "run", "--memory", "1g"}, 0);
    CHECK(none.parse_argc == 4);
    CHECK(none.command.empty());
}
