// `nucleus rootfs build --from-host` end to end: the rootfs it makes runs
// its program in a sandbox, and passes its own attestation; bad input exits
// 125 and leaves nothing.
#include <unistd.h>

#include <fstream>

#include <catch2/catch_test_macros.hpp>

#include "harness.hpp"

using namespace nit;

TEST_CASE("a Python rootfs from host files runs Python, attested", "[rootfs][build]") {
    if (::geteuid() != 0) SKIP("needs root: sandboxes with full id maps");
    if (::access("/usr/bin/python3", X_OK) != 0 || !fs::is_directory("/usr/lib/python3.11"))
        SKIP("needs Debian's python3 (3.11) on the host");
    TempDir scratch("rootfs-build");
    const std::string dir = (scratch / "python").string();
    auto built = run(
        {kNucleus, "rootfs", "build", "--from-host", "/usr/bin/python3", "--add", "/usr/lib/python3.11", "-o", dir});
    INFO(built.describe());
    REQUIRE(built.exit_code == 0);
    auto r = run_nucleus({"--rootfs", dir, "--verify-rootfs-attestation"},
                         {"python3", "-c", "import json, ssl, sqlite3, zlib; print('sum', 2 + 2)"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(r.out == "sum 4\n");
    // Nothing but what was asked for: no shell in this root.
    auto sh = run_nucleus({"--rootfs", dir}, {"/bin/sh", "-c", "true"});
    CHECK(sh.exit_code == 127);
}

TEST_CASE("rootfs build refuses bad input with exit 125 and writes nothing", "[rootfs][build]") {
    TempDir scratch("rootfs-build");
    const std::string out = (scratch / "out").string();
    auto missing = run({kNucleus, "rootfs", "build", "--from-host", "/nonexistent/prog", "-o", out});
    CHECK(missing.exit_code == 125);
    CHECK(missing.err.find("/nonexistent/prog") != std::string::npos);
    auto script = run({kNucleus, "rootfs", "build", "--from-host", "/usr/bin/ldd", "-o", out});  // a bash script
    if (fs::exists("/usr/bin/ldd")) {
        CHECK(script.exit_code == 125);
        CHECK(script.err.find("not an ELF file") != std::string::npos);
    }
    fs::create_directories(scratch / "full");
    { std::ofstream(scratch / "full/x") << "x"; }
    auto full = run({kNucleus, "rootfs", "build", "--from-host", "/bin/busybox", "-o", (scratch / "full").string()});
    CHECK(full.exit_code == 125);
    CHECK(full.err.find("not empty") != std::string::npos);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(scratch.path())) names.push_back(e.path().filename().string());
    CHECK(names == std::vector<std::string>{"full"});
}
