// The command line itself: unknown commands, help, bytes in arguments,
// documents that could crash a parser, files planted for the runtime.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include "harness.hpp"

using namespace nit;

TEST_CASE("cli: an unknown command is named with the list of commands; bare nucleus prints the help", "[cli]") {
    for (std::vector<std::string> argv :
         {std::vector<std::string>{kNucleus, "frobnicate"}, std::vector<std::string>{kNucleus, "checkpoint", "x"}}) {
        auto r = run(argv);
        INFO(r.describe());
        CHECK(r.exit_code == 125);
        CHECK(contains(r.err, "nucleus: error: unknown command '" + argv[1] + "'"));
        CHECK(contains(r.err, "  run "));
        CHECK(contains(r.err, "  daemon "));
    }
    auto bare = run({kNucleus});
    INFO(bare.describe());
    CHECK(bare.exit_code == 0);
    CHECK(contains(bare.out, "Usage: nucleus"));
    CHECK(contains(bare.out, "Exit codes:"));
}

TEST_CASE("cli: arguments and environment values that are not UTF-8 reach the workload byte for byte", "[cli][bytes]") {
    require_root();
    auto r =
        run_nucleus({"-e", "V=\xff\xfe"}, {"sh", "-c", "printf '%s|%s' \"$V\" \"$1\" | od -An -tx1", "sh", "a\x80z"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "ff fe 7c 61 80 7a"));
}

TEST_CASE("cli: a document nested 100,000 levels deep on --config-fd is refused, not a crash", "[cli][config]") {
    TempDir dir("deep");
    write_file(dir / "deep.json", std::string(100000, '['));
    SpawnOptions options;
    options.fd_files = {{3, (dir / "deep.json").string(), O_RDONLY}};
    auto r = run_nucleus({"--config-fd", "3"}, {"/bin/true"}, options);
    INFO(r.describe());
    CHECK(r.exit_code == 125);
    CHECK(contains(r.err, "nested more than 64 levels deep"));
}

TEST_CASE("cli: --events-jsonl and --audit-log refuse a planted symlink and another user's file", "[cli][events]") {
    require_root();
    TempDir shared("sticky", 01777);
    write_file(shared / "target", "precious\n");
    fs::create_symlink(shared / "target", shared / "events.jsonl");
    for (const char* flag : {"--events-jsonl", "--audit-log"}) {
        auto r = run_nucleus({flag, (shared / "events.jsonl").string()}, {"/bin/true"});
        INFO(r.describe());
        CHECK(r.exit_code == 125);
        CHECK(contains(r.err, "is a symbolic link"));
    }
    CHECK(read_file(shared / "target") == "precious\n");
    // A regular file another user made in the sticky directory.
    write_file(shared / "planted.jsonl", "");
    REQUIRE(::chown((shared / "planted.jsonl").c_str(), 65534, 65534) == 0);
    auto r = run_nucleus({"--events-jsonl", (shared / "planted.jsonl").string()}, {"/bin/true"});
    INFO(r.describe());
    CHECK(r.exit_code == 125);
    CHECK(contains(r.err, "belongs to uid 65534 in a sticky directory"));
    CHECK(read_file(shared / "planted.jsonl").empty());
}
