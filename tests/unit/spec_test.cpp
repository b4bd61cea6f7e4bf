#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/spec.hpp"

using nlohmann::json;
using namespace nucleus::core;

namespace {

json with_command(json doc) {
    doc["command"] = {"/bin/true"};
    return doc;
}

std::string error_of(const json& doc) {
    auto spec = spec_from_document(doc);
    REQUIRE_FALSE(spec);
    return spec.error().message;
}

}  // namespace

TEST_CASE("a minimal document gives the agent defaults") {
    auto spec = spec_from_document(with_command(json::object()));
    REQUIRE(spec);
    CHECK(spec->uid == 1000);
    CHECK(spec->gid == 1000);
    CHECK(spec->network == nucleus::net::NetworkMode::None);
    CHECK(spec->cap_add == 0);
    CHECK_FALSE(spec->rootfs);
    CHECK(spec->command == std::vector<std::string>{"/bin/true"});
}

TEST_CASE("every key is checked with a message naming it") {
    CHECK(error_of(with_command({{"bogus", 1}})) == "unknown setting \"bogus\"");
    CHECK(error_of(with_command({{"network", "bridged"}}))
              .starts_with("network (--network): must be none, host, egress or bridge"));
    CHECK(error_of(with_command({{"user", "root"}})).find("not a numeric id") != std::string::npos);
    CHECK(error_of(with_command({{"user", "70000"}})).find("outside the sandbox's range") != std::string::npos);
    CHECK(error_of(with_command({{"rootfs", "/nonexistent/rootfs"}}))
              .starts_with("rootfs (--rootfs): \"/nonexistent/rootfs\""));
    CHECK(error_of(with_command({{"rootfs", "/"}})).find("cannot be a rootfs") != std::string::npos);
    CHECK(error_of(with_command({{"workspace_mode", "copy-in-out"}})).find("needs --workspace") != std::string::npos);
    CHECK(error_of(with_command({{"workspace", "/tmp"}, {"workspace_mode", "sync"}})).find("must be bind-rw") !=
          std::string::npos);
    CHECK(error_of(with_command({{"volume", {"/tmp:relative"}}})).find("must be an absolute path") !=
          std::string::npos);
    CHECK(error_of(with_command({{"volume", {"/tmp:/proc/x"}}})).find("runtime-managed") != std::string::npos);
    CHECK(error_of(with_command({{"volume", {"/tmp:/a", "/tmp:/a"}}})).find("used twice") != std::string::npos);
    CHECK(error_of(with_command({{"volume", {"/tmp:/a:rx"}}})).find("mode must be ro or rw") != std::string::npos);
    CHECK(error_of(with_command({{"cap_add", {"CAP_FLY"}}})).find("unknown capability") != std::string::npos);
    CHECK(error_of(with_command({{"ulimit", {"nofile=10:5"}}})).find("soft limit above hard") != std::string::npos);
    CHECK(error_of(with_command({{"ulimit", {"bogus=1"}}})).find("unknown limit") != std::string::npos);
    CHECK(error_of(with_command({{"ulimit", {"nofile=99999999"}}})).find("above the runtime's own hard limit") !=
          std::string::npos);
    CHECK(error_of(with_command({{"timeout", -1}})).find("positive") != std::string::npos);
    CHECK(error_of(with_command({{"timeout", "ten"}})).find("must be a number") != std::string::npos);
    CHECK(spec_from_document(with_command({{"timeout", "10"}})));  // as the flag gives it
    CHECK(error_of(with_command({{"env", {"=x"}}})).find("KEY=VALUE") != std::string::npos);
    CHECK(error_of(with_command({{"hostname", "bad host"}})).find("not a valid hostname") != std::string::npos);
    CHECK(error_of(with_command({{"name", "-x"}})).find("starting alphanumeric") != std::string::npos);
    CHECK(error_of(with_command({{"events_fd", 987}})).find("not an open descriptor") != std::string::npos);
    CHECK(error_of(with_command({{"time_namespace", "yes"}})).find("true or false") != std::string::npos);
    CHECK(error_of(json::object()).find("no command given") != std::string::npos);
    CHECK(error_of(json::array()) == "a sandbox spec must be an object of settings");
}

TEST_CASE("env merges --env-file then -e, bare keys come from the host") {
    auto file = std::filesystem::temp_directory_path() / ("nucleus-env-" + std::to_string(::getpid()));
    std::ofstream(file) << "# comment\nA=1\n\n  B=two words\n";
    ::setenv("NUCLEUS_TEST_HOST_VAR", "from-host", 1);
    auto spec = spec_from_document(with_command(
        {{"env_file", {file.string()}}, {"env", {"C=3", "NUCLEUS_TEST_HOST_VAR", "NUCLEUS_TEST_UNSET_VAR"}}}));
    REQUIRE(spec);
    CHECK(spec->env == std::vector<std::string>{"A=1", "B=two words", "C=3", "NUCLEUS_TEST_HOST_VAR=from-host"});
    std::ofstream(file) << "not a pair\n";
    auto bad = spec_from_document(with_command({{"env_file", {file.string()}}}));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find(":1:") != std::string::npos);
    std::filesystem::remove(file);
}

TEST_CASE("user, ulimit and cap_add values are parsed") {
    auto spec = spec_from_document(with_command(
        {{"user", "0:5"}, {"ulimit", {"nofile=64:128", "core=0"}}, {"cap_add", {"NET_BIND_SERVICE", "cap_chown"}}}));
    REQUIRE(spec);
    CHECK(spec->uid == 0);
    CHECK(spec->gid == 5);
    REQUIRE(spec->ulimits.size() == 2);
    CHECK(spec->ulimits[0].soft == 64);
    CHECK(spec->ulimits[0].hard == 128);
    CHECK(spec->cap_add == ((1ULL << 10) | (1ULL << 0)));
    auto numeric = spec_from_document(with_command({{"user", 1234}}));
    REQUIRE(numeric);
    CHECK(numeric->uid == 1234);
}

TEST_CASE("JSON and TOML config texts give the same document") {
    auto from_json = parse_config_text(R"({"network": "host", "volume": ["/tmp:/data:ro"], "command": ["/bin/true"]})",
                                       "json", "x.json");
    auto from_toml = parse_config_text("network = \"host\"\nvolume = [\"/tmp:/data:ro\"]\ncommand = [\"/bin/true\"]\n",
                                       "toml", "x.toml");
    REQUIRE(from_json);
    REQUIRE(from_toml);
    CHECK(*from_json == *from_toml);
    auto bad_toml = parse_config_text("network = \n", "toml", "x.toml");
    REQUIRE_FALSE(bad_toml);
    CHECK(bad_toml.error().message.starts_with("x.toml:1:"));
    auto bad_json = parse_config_text("{\"a\": ", "json", "x.json");
    REQUIRE_FALSE(bad_json);
    CHECK(bad_json.error().message.find("invalid JSON") != std::string::npos);
    CHECK_FALSE(parse_config_text("", "yaml", "x.yaml"));
}

TEST_CASE("resource keys become cgroup limits; agents get a default pids limit") {
    auto plain = spec_from_document(with_command(json::object()));
    REQUIRE(plain);
    CHECK(plain->limits.pids_max == default_agent_pids_max);
    CHECK(plain->requested_limits.empty());

    auto spec = spec_from_document(with_command({{"memory", "64m"},
                                                 {"memory_swap", "96m"},
                                                 {"cpus", "0.5"},
                                                 {"cpu_weight", 50},
                                                 {"pids", 64},
                                                 {"tmpfs_size", "8m"},
                                                 {"cgroup_parent", "agents/pool"}}));
    REQUIRE(spec);
    CHECK(spec->limits.memory_max == 64ull << 20);
    CHECK(spec->limits.swap_max == 32ull << 20);
    CHECK(spec->limits.cpu_quota_us == 50000u);
    CHECK(spec->limits.cpu_weight == 50u);
    CHECK(spec->limits.pids_max == 64u);
    CHECK(spec->tmpfs_size == 8ull << 20);
    CHECK(spec->cgroup_parent == "agents/pool");
    CHECK(spec->requested_limits == std::vector<std::string>{"memory", "memory_swap", "cpus", "cpu_weight", "pids"});

    CHECK(error_of(with_command({{"memory", "1k"}})).find("at least 4m") != std::string::npos);
    CHECK(error_of(with_command({{"memory_swap", "1g"}})).find("needs --memory") != std::string::npos);
    CHECK(error_of(with_command({{"memory", "64m"}, {"memory_swap", "32m"}})).find("at least --memory") !=
          std::string::npos);
    CHECK(error_of(with_command({{"memory", "64m"}, {"memory_high", "128m"}})).find("must not exceed") !=
          std::string::npos);
    CHECK(error_of(with_command({{"cpus", 0}})).find("from 0.01") != std::string::npos);
    CHECK(error_of(with_command({{"pids", 0}})).find("from 1") != std::string::npos);
    CHECK(error_of(with_command({{"cpu_weight", 20000}})).find("to 10000") != std::string::npos);
    CHECK(error_of(with_command({{"io_max", {"8:0:bogus=1"}}})).find("unknown io.max key") != std::string::npos);
    CHECK(error_of(with_command({{"cgroup_parent", "../escape"}})).find("inside it") != std::string::npos);
    CHECK(error_of(with_command({{"cgroup_parent", "/abs"}})).find("relative") != std::string::npos);
    auto unlimited_swap = spec_from_document(with_command({{"memory", "64m"}, {"memory_swap", -1}}));
    REQUIRE(unlimited_swap);
    CHECK_FALSE(unlimited_swap->limits.swap_max);
}

TEST_CASE("volume targets on, inside or over the root's read-only binds are refused") {
    namespace fs = std::filesystem;
    auto volume_error = [](const std::string& target, const json& extra = json::object()) {
        json doc = with_command(extra);
        doc["volume"] = {"/tmp:" + target};
        auto spec = spec_from_document(doc);
        return spec ? std::string() : spec.error().message;
    };
    CHECK(volume_error("/usr").starts_with(
        "volume (--volume): target /usr would replace the read-only system bind /usr"));
    CHECK(volume_error("/usr/local/data").find("is inside the read-only system bind /usr") != std::string::npos);
    CHECK(volume_error("/etc/ssl/private").find("/etc/ssl") != std::string::npos);
    CHECK(volume_error("/etc/passwd").find("would replace") != std::string::npos);
    CHECK(volume_error("/proc").find("is a runtime-managed mount") != std::string::npos);
    CHECK(volume_error("/dev").find("is a runtime-managed mount") != std::string::npos);
    CHECK(volume_error("/sys/x").find("inside a runtime-managed mount") != std::string::npos);
    for (const char* alias : {"/bin", "/lib", "/lib64", "/sbin"}) {
        if (!fs::is_symlink(alias)) continue;  // merged-/usr hosts: a symlink in the sandbox's root too
        INFO(alias);
        CHECK(volume_error(alias).find(std::string("is ") + alias + ", a symlink to") != std::string::npos);
        CHECK(volume_error(std::string(alias) + "/x").find("is inside " + std::string(alias)) != std::string::npos);
    }
    // Free places stay free.
    CHECK(volume_error("/data") == "");
    CHECK(volume_error("/etc/myapp") == "");
    CHECK(volume_error("/usrdata") == "");
    CHECK(volume_error("/tmp/x") == "");

    // A rootfs: its top-level entries are the read-only binds.
    auto rootfs = fs::temp_directory_path() / ("nucleus-rootfs-" + std::to_string(::getpid()));
    fs::remove_all(rootfs);
    fs::create_directories(rootfs / "opt" / "app" / "data");
    fs::create_symlink("opt/app", rootfs / "app");
    json with_rootfs = {{"rootfs", rootfs.string()}};
    CHECK(volume_error("/opt", with_rootfs).find("would replace the rootfs's read-only /opt") != std::string::npos);
    CHECK(volume_error("/opt/app/data", with_rootfs) == "");  // the mount point exists
    CHECK(volume_error("/opt/new", with_rootfs).find("does not exist there") != std::string::npos);
    CHECK(volume_error("/app/data", with_rootfs).find("a symlink to opt/app") != std::string::npos);
    CHECK(volume_error("/usr", with_rootfs) == "");  // not in this rootfs: made on the root tmpfs
    fs::remove_all(rootfs);
}

TEST_CASE("ulimit errors say what is wrong; -1 and unlimited mean unlimited") {
    auto ulimit_error = [](const std::string& text) { return error_of(with_command({{"ulimit", {text}}})); };
    auto nofile = ulimit_error("nofile=-1");
    CHECK(nofile.find("nofile cannot be unlimited (-1)") != std::string::npos);
    CHECK(nofile.find("fs.nr_open") != std::string::npos);
    CHECK(nofile.find("runtime's own hard limit") == std::string::npos);  // the old, misleading message
    CHECK(ulimit_error("nofile=unlimited").find("nofile cannot be unlimited") != std::string::npos);
    CHECK(ulimit_error("nofile=-2").find("soft limit \"-2\" is negative") != std::string::npos);
    CHECK(ulimit_error("nofile=10:-5").find("hard limit \"-5\" is negative") != std::string::npos);
    CHECK(ulimit_error("nofile=").find("soft limit is missing") != std::string::npos);
    CHECK(ulimit_error("nofile=1.5").find("is not a whole number") != std::string::npos);
    CHECK(ulimit_error("nofile=99999999999999999999999").find("out of range") != std::string::npos);
    CHECK(ulimit_error("nofile=1:2:3").find("more than SOFT:HARD") != std::string::npos);
    CHECK(ulimit_error("nofile=10:5").find("(10 > 5)") != std::string::npos);
    CHECK(ulimit_error("cores=1").find("known: core,") != std::string::npos);
    struct rlimit core {};
    REQUIRE(::getrlimit(RLIMIT_CORE, &core) == 0);
    auto unlimited_core = spec_from_document(with_command({{"ulimit", {"core=0:-1"}}}));
    if (core.rlim_max == RLIM_INFINITY) {
        REQUIRE(unlimited_core);
        CHECK(unlimited_core->ulimits.at(0).hard == RLIM_INFINITY);
        CHECK(unlimited_core->ulimits.at(0).soft == 0);
    } else {
        REQUIRE_FALSE(unlimited_core);
        CHECK(unlimited_core.error().message.find("hard limit unlimited is above the runtime's own hard limit") !=
              std::string::npos);
    }
}

TEST_CASE("a rootfs the sandbox cannot traverse is refused naming it") {
    if (::geteuid() != 0) SKIP("as root, the sandbox's ids own nothing on the host");
    namespace fs = std::filesystem;
    auto base = fs::temp_directory_path() / ("nucleus-rootfs-mode-" + std::to_string(::getpid()));
    fs::remove_all(base);
    fs::create_directories(base / "rootfs" / "bin");
    fs::permissions(base, fs::perms(0755));
    fs::permissions(base / "rootfs", fs::perms(0700));
    auto spec = spec_from_document(with_command({{"rootfs", (base / "rootfs").string()}}));
    REQUIRE_FALSE(spec);
    const auto& message = spec.error().message;
    CHECK(message.starts_with("rootfs (--rootfs): \"" + (base / "rootfs").string() +
                              "\" is not traversable by the sandbox's uid"));
    CHECK(message.find("(mode 0700, owner 0:") != std::string::npos);
    CHECK(message.find("staging") == std::string::npos);
    fs::permissions(base / "rootfs", fs::perms(0755));
    CHECK(spec_from_document(with_command({{"rootfs", (base / "rootfs").string()}})));
    // An ancestor is named when it is the one in the way.
    fs::permissions(base, fs::perms(0700));
    auto ancestor = spec_from_document(with_command({{"rootfs", (base / "rootfs").string()}}));
    REQUIRE_FALSE(ancestor);
    CHECK(ancestor.error().message.find(": \"" + base.string() + "\" (mode 0700") != std::string::npos);
    fs::remove_all(base);
}

TEST_CASE("published ports need --network bridge and are parsed once each") {
    auto spec =
        spec_from_document(with_command({{"network", "bridge"}, {"publish", {"8080:80", "0.0.0.0:53:53/udp"}}}));
    REQUIRE(spec);
    CHECK(spec->network == nucleus::net::NetworkMode::Bridge);
    REQUIRE(spec->publish.size() == 2);
    CHECK(nucleus::net::to_string(spec->publish[0]) == "127.0.0.1:8080:80/tcp");
    CHECK(error_of(with_command({{"publish", {"8080:80"}}})).find("needs --network bridge") != std::string::npos);
    CHECK(error_of(with_command({{"network", "bridge"}, {"publish", {"8080:80", "127.0.0.1:8080:81"}}}))
              .find("publishes host port 8080/tcp twice") != std::string::npos);
    CHECK(
        error_of(with_command({{"network", "bridge"}, {"publish", 8080}})).starts_with("publish (--publish): must be"));
    CHECK(error_of(with_command({{"network", "bridge"}, {"publish", {"[::1]:80:80"}}})).find("[::1]") !=
          std::string::npos);
    // The same host port over UDP, or on another address, is another port.
    CHECK(spec_from_document(
        with_command({{"network", "bridge"}, {"publish", {"8080:80", "8080:80/udp", "0.0.0.0:8080:80"}}})));
}

TEST_CASE("network keys: a bridged sandbox takes address rules, not names") {
    auto bridged = spec_from_document(with_command(
        {{"network", "bridge"}, {"allow_cidr", json::array({"203.0.113.0/24:443", "[2001:db8::/32]:*"})}}));
    REQUIRE(bridged);
    CHECK(bridged->egress.cidrs.size() == 2);
    CHECK(error_of(with_command({{"network", "bridge"}, {"allow_domain", "pypi.org"}}))
              .find("--network bridge takes --allow-cidr rules only") != std::string::npos);
}

TEST_CASE("network keys: allow rules make egress the default; none and host refuse them") {
    auto egress = spec_from_document(with_command(
        {{"allow_domain", json::array({"pypi.org", "*.example.com:443"})}, {"allow_cidr", "203.0.113.0/24:22"}}));
    REQUIRE(egress);
    CHECK(egress->network == nucleus::net::NetworkMode::Egress);
    CHECK(egress->egress.domains.size() == 2);
    CHECK(egress->egress.cidrs.size() == 1);
    CHECK(error_of(with_command({{"network", "host"}, {"allow_domain", "pypi.org"}}))
              .starts_with("allow_domain (--allow-domain): --network host takes no allow rules"));
    CHECK(error_of(with_command({{"allow_domain", "a b"}})).starts_with("allow_domain (--allow-domain): "));
    CHECK(error_of(with_command({{"allow_cidr", json::array({1})}}))
              .starts_with("allow_cidr (--allow-cidr): must be a list"));
    CHECK(error_of(with_command({{"allow_from_file", "/nonexistent/allow.txt"}}))
              .starts_with("allow_from_file (--allow-from-file): "));
    auto explicit_egress = spec_from_document(with_command({{"network", "egress"}}));
    REQUIRE(explicit_egress);
    CHECK(explicit_egress->egress.empty());  // deny everything, DNS included
}
