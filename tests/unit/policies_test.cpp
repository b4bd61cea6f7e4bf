#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>

#include "core/attestation.hpp"
#include "core/policies.hpp"
#include <nlohmann/json.hpp>

#include "core/spec.hpp"
#include "isolation/kernel_abi.hpp"

using namespace nucleus::core;

namespace {
std::string message_of(const nucleus::Error& e) { return e.message; }
}  // namespace

TEST_CASE("capability policies: bounding and ambient, ambient inside bounding") {
    auto p = parse_caps_policy("bounding = [\"NET_BIND_SERVICE\", \"cap_chown\"]\nambient = [\"NET_BIND_SERVICE\"]\n",
                               "c.toml");
    REQUIRE(p);
    CHECK(p->bounding == ((1ULL << 10) | 1ULL));
    CHECK(p->ambient == (1ULL << 10));
    auto outside = parse_caps_policy("bounding = []\nambient = [\"NET_RAW\"]\n", "c.toml");
    REQUIRE_FALSE(outside);
    CHECK(message_of(outside.error()).find("which bounding does not allow") != std::string::npos);
    auto unknown = parse_caps_policy("bounding = [\"FLY\"]\n", "c.toml");
    REQUIRE_FALSE(unknown);
    CHECK(message_of(unknown.error()) == "c.toml:1: unknown capability \"FLY\"");
    auto key = parse_caps_policy("\nkeep = []\n", "c.toml");
    REQUIRE_FALSE(key);
    CHECK(message_of(key.error()) == "c.toml:2: unknown key \"keep\"");
    CHECK_FALSE(parse_caps_policy("bounding = [", "c.toml"));
}

TEST_CASE("Landlock policies: rules of path and rights, checked against min_abi") {
    const char* text =
        "min_abi = 3\n"
        "[[rule]]\npath = \"/usr\"\naccess = [\"read_file\", \"read_dir\", \"execute\"]\n"
        "[[rule]]\npath = \"/tmp\"\naccess = [\"read_file\", \"write_file\", \"make_reg\", \"truncate\"]\n";
    auto p = parse_landlock_policy(text, "l.toml");
    REQUIRE(p);
    CHECK(p->min_abi == 3);
    REQUIRE(p->rules.size() == 2);
    CHECK(p->rules[0].path == "/usr");
    CHECK((p->rules[1].access & nucleus::kabi::landlock_fs::truncate) != 0);

    auto too_new = parse_landlock_policy("[[rule]]\npath = \"/tmp\"\naccess = [\"truncate\"]\n", "l.toml");
    REQUIRE_FALSE(too_new);
    CHECK(message_of(too_new.error()).find("l.toml:3:") == 0);
    CHECK(message_of(too_new.error()).find("needs Landlock ABI 3") != std::string::npos);
    CHECK_FALSE(parse_landlock_policy("[[rule]]\npath = \"relative\"\naccess = [\"read_file\"]\n", "l.toml"));
    CHECK_FALSE(parse_landlock_policy("[[rule]]\npath = \"/x\"\naccess = [\"fly\"]\n", "l.toml"));
    CHECK_FALSE(parse_landlock_policy("[[rule]]\npath = \"/x\"\naccess = []\n", "l.toml"));
    CHECK_FALSE(parse_landlock_policy("min_abi = 1\n", "l.toml"));
    CHECK_FALSE(parse_landlock_policy("min_abi = 0\n[[rule]]\npath = \"/x\"\naccess = [\"read_file\"]\n", "l.toml"));
}

TEST_CASE("seccomp profiles in the OCI/Docker format") {
    const char* text = R"({
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 38,
      "architectures": ["SCMP_ARCH_X86_64"],
      "syscalls": [
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PTRACE"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
      ]})";
    auto p = parse_seccomp_profile(text, "p.json", 0);
    REQUIRE(p);
    CHECK(p->policy.default_action.errno_value == 38);
    CHECK(p->policy.rules.size() == 5);  // ptrace skipped: CAP_SYS_PTRACE is not kept
    auto with_ptrace = parse_seccomp_profile(text, "p.json", 1ULL << 19);
    REQUIRE(with_ptrace);
    CHECK(with_ptrace->policy.rules.size() == 6);
    CHECK(nucleus::isolation::compile_seccomp(p->policy));

    auto bad_name = parse_seccomp_profile(R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["no_such_call"], "action": "SCMP_ACT_ALLOW"}]})",
                                          "p.json", 0);
    REQUIRE_FALSE(bad_name);
    CHECK(message_of(bad_name.error()) == "p.json: syscalls[1]: unknown syscall \"no_such_call\"");
    auto bad_action = parse_seccomp_profile(R"({"defaultAction": "SCMP_ACT_MAYBE"})", "p.json", 0);
    REQUIRE_FALSE(bad_action);
    CHECK(message_of(bad_action.error()).find("unknown action \"SCMP_ACT_MAYBE\"") != std::string::npos);
    auto bad_json = parse_seccomp_profile("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  oops\n}", "p.json", 0);
    REQUIRE_FALSE(bad_json);
    CHECK(message_of(bad_json.error()).find("p.json:3: invalid JSON") == 0);
    auto bad_op = parse_seccomp_profile(R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]})",
                                        "p.json", 0);
    REQUIRE_FALSE(bad_op);
    CHECK(message_of(bad_op.error()).find("unknown arg op") != std::string::npos);
    CHECK_FALSE(parse_seccomp_profile(R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]})",
                                      "p.json", 0));
    CHECK_FALSE(parse_seccomp_profile(R"({"defaultAction": "SCMP_ACT_NOTIFY"})", "p.json", 0));
    // Found by tests/fuzz: a number too large for any type throws out_of_range, not parse_error.
    auto huge = parse_seccomp_profile("1111111111111111111110000000000010e893797712", "p.json", 0);
    REQUIRE_FALSE(huge);
    CHECK(message_of(huge.error()).find("number overflow") != std::string::npos);
    CHECK_FALSE(parse_config_text("{\"timeout\": 1e999999}", "json", "c.json"));
}

TEST_CASE("Docker's default profile loads and compiles") {
    const char* path = "/usr/local/share/nucleus/docker-default-seccomp.json";
    if (!std::filesystem::exists(path))
        SKIP(std::string(path) +
             " is missing (scripts/install-deps.sh extracts it from Debian's golang-github-docker-docker-dev)");
    auto text = read_policy_file(path, std::nullopt, "profile");
    REQUIRE(text);
    auto p = parse_seccomp_profile(*text, path, 0);
    INFO((p ? std::string() : p.error().describe()));
    REQUIRE(p);
    CHECK(p->policy.rules.size() > 300);
    CHECK(nucleus::isolation::compile_seccomp(p->policy));
}

TEST_CASE("Podman's own profile loads and compiles") {
    const char* path = "/usr/share/containers/seccomp.json";
    if (!std::filesystem::exists(path))
        SKIP(std::string(path) +
             " is missing (Debian's golang-github-containers-common, installed with podman by "
             "NUCLEUS_WITH_PEERS=1 scripts/install-deps.sh)");
    auto text = read_policy_file(path, std::nullopt, "profile");
    REQUIRE(text);
    auto p = parse_seccomp_profile(*text, path, 0);
    INFO((p ? std::string() : p.error().describe()));
    REQUIRE(p);
    CHECK(p->policy.default_action.errno_value == ENOSYS);  // defaultErrno "ENOSYS", defaultErrnoRet 38
    CHECK(nucleus::isolation::compile_seccomp(p->policy));
}

TEST_CASE("seccomp profiles: Podman's errno names, OCI flags, and fields without a meaning named") {
    auto profile = [](const std::string& body) { return parse_seccomp_profile(body, "p.json", 0); };
    auto named = profile(R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "ENOSYS",
        "syscalls": [{"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errno": "EACCES"}]})");
    REQUIRE(named);
    CHECK(named->policy.default_action.errno_value == ENOSYS);
    CHECK(named->policy.rules.at(0).action.errno_value == EACCES);
    auto disagree = profile(R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "ENOSYS", "defaultErrnoRet": 1})");
    REQUIRE_FALSE(disagree);
    CHECK(message_of(disagree.error()) == "p.json: defaultErrno ENOSYS disagrees with defaultErrnoRet 1");
    CHECK(message_of(profile(R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "EWHAT"})").error())
              .find("defaultErrno must be an errno name") != std::string::npos);
    auto logged = profile(
        R"({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]})");
    REQUIRE(logged);
    CHECK(logged->log_denied);
    CHECK(message_of(
              profile(R"({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]})").error())
              .find("speculative store bypass") != std::string::npos);
    CHECK(message_of(profile(R"({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"})").error())
              .starts_with("p.json: field \"listenerPath\" has no meaning here"));
    CHECK(message_of(profile(R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chroot"],
        "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "4.8", "bogus": 1}}]})")
                         .error()) == "p.json: syscalls[0]: includes: unknown field \"bogus\"");
}

TEST_CASE("toml++'s unreachable point on non-ASCII input ends cleanly with 125") {
    // Found by tests/fuzz: U+027E where toml++ 3.3 tests for whitespace.
    pid_t pid = ::fork();
    if (pid == 0) {
        (void)parse_caps_policy(
            "bounding = [9\xc9\xbe"
            "4]\n",
            "c.toml");
        ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK((WEXITSTATUS(status) == 125 || WEXITSTATUS(status) == 0));  // 0: a toml++ that parses it
}

TEST_CASE("policy files are pinned by SHA-256") {
    auto file = std::filesystem::temp_directory_path() / ("nucleus-pin-" + std::to_string(::getpid()) + ".toml");
    std::ofstream(file) << "bounding = []\n";
    std::string sum = sha256_hex("bounding = []\n");
    CHECK(read_policy_file(file.string(), sum, "capability policy"));
    std::string wrong(64, '0');
    auto refused = read_policy_file(file.string(), wrong, "capability policy");
    REQUIRE_FALSE(refused);
    CHECK(message_of(refused.error()).find("SHA-256 is " + sum) != std::string::npos);
    std::filesystem::remove(file);
}
