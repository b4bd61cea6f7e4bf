// `nucleus rootfs build --from-host`: the tree it makes from this host's
// programs, and the bad input it refuses without leaving anything behind.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>

#include "core/attestation.hpp"
#include "core/rootfs_build.hpp"
#include "io/unique_fd.hpp"
#include "isolation/elf_closure.hpp"

using namespace nucleus::core;
namespace fs = std::filesystem;

namespace {

struct Scratch {
    fs::path root;
    Scratch() {
        std::string pattern = (fs::temp_directory_path() / "nucleus-rootfs-build-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        root = pattern;
    }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    std::string operator/(const std::string& rel) const { return (root / rel).string(); }
    // Everything in the scratch directory: a failed build adds nothing.
    std::vector<std::string> entries() const {
        std::vector<std::string> names;
        for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }
};

bool is_link(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

std::string error_of(const RootfsBuildRequest& r) {
    auto built = build_rootfs_from_host(r);
    REQUIRE(!built.ok());
    return built.error().describe();
}

}  // namespace

TEST_CASE("rootfs build: a dynamic program, its loader and libraries, symlinks kept, /etc, attested") {
    if (::access("/bin/ls", X_OK) != 0) SKIP("no /bin/ls on this host");
    Scratch s;
    auto built = build_rootfs_from_host({.programs = {"/bin/ls"}, .adds = {}, .output = s / "out"});
    REQUIRE(built.ok());
    std::string out = s / "out";
    CHECK(fs::exists(out + "/bin/ls"));
    CHECK(is_link("/bin") == is_link(out + "/bin"));  // merged /usr: /bin -> usr/bin, the same link
    auto interpreter = nucleus::isolation::read_elf_file("/bin/ls")->interpreter.value();
    CHECK(fs::exists(out + interpreter));
    CHECK(is_link(interpreter) == is_link(out + interpreter));
    bool has_libc = false;
    for (const auto& e : fs::recursive_directory_iterator(out))
        if (e.path().filename() == "libc.so.6") has_libc = true;
    CHECK(has_libc);
    auto passwd = nucleus::io::read_file(out + "/etc/passwd");
    REQUIRE(passwd.ok());
    CHECK(passwd->find("agent:x:1000:1000:agent:/home/agent:/bin/sh") != std::string::npos);
    CHECK(fs::exists(out + "/etc/nsswitch.conf"));
    CHECK(fs::exists(out + "/etc/group"));
    // The manifest is the one `nucleus rootfs attest` writes, and it verifies.
    auto diffs = verify_rootfs(out);
    REQUIRE(diffs.ok());
    CHECK(diffs->empty());
    CHECK(built->manifest_sha256 == sha256_hex(nucleus::io::read_file(out + "/" + attestation_file, 1 << 26).value()));
    CHECK(built->elf_objects >= 3);
    CHECK(s.entries() == std::vector<std::string>{"out"});  // no temporary sibling left
    // Only the permission bits: the root is searchable by the sandbox's ids.
    CHECK((fs::status(out).permissions() & fs::perms::others_exec) != fs::perms::none);
}

TEST_CASE("rootfs build: --add copies a tree whole, links inside it stay links") {
    Scratch s;
    fs::create_directories(s / "data/sub");
    std::ofstream(s / "data/sub/file.txt") << "hello";
    fs::create_symlink("sub/file.txt", s / "data/link");
    fs::create_symlink("/bin/busybox", s / "data/tool");
    auto built = build_rootfs_from_host({.programs = {}, .adds = {s / "data"}, .output = s / "out"});
    REQUIRE(built.ok());
    std::string copy = s / "out" + (s / "data");
    CHECK(nucleus::io::read_file(copy + "/sub/file.txt").value() == "hello");
    CHECK(is_link(copy + "/link"));
    CHECK(fs::read_symlink(copy + "/link") == "sub/file.txt");
    if (fs::exists("/bin/busybox")) CHECK(fs::exists(s / "out" + "/bin/busybox"));  // a link's target file comes along
}

TEST_CASE("rootfs build: an existing empty -o is filled; a non-empty one is refused and untouched") {
    if (::access("/bin/busybox", X_OK) != 0) SKIP("no /bin/busybox (Debian's busybox-static) on this host");
    Scratch s;
    fs::create_directories(s / "empty");
    REQUIRE(build_rootfs_from_host({.programs = {"/bin/busybox"}, .adds = {}, .output = s / "empty"}).ok());
    CHECK(fs::exists(s / "empty/bin/busybox"));
    fs::create_directories(s / "full");
    std::ofstream(s / "full/keep") << "mine";
    auto message = error_of({.programs = {"/bin/busybox"}, .adds = {}, .output = s / "full"});
    CHECK(message.find("exists and is not empty") != std::string::npos);
    CHECK(nucleus::io::read_file(s / "full/keep").value() == "mine");
    CHECK(s.entries() == std::vector<std::string>{"empty", "full"});
}

TEST_CASE("rootfs build: a missing program, a non-ELF program and a cycle of links are refused, nothing left") {
    Scratch s;
    CHECK(error_of({.programs = {s / "nope"}, .adds = {}, .output = s / "out"}).find("No such file") !=
          std::string::npos);
    std::ofstream(s / "script.sh") << "#!/bin/sh\necho hi\n";
    ::chmod((s / "script.sh").c_str(), 0755);
    CHECK(error_of({.programs = {s / "script.sh"}, .adds = {}, .output = s / "out"}).find("not an ELF file") !=
          std::string::npos);
    fs::create_symlink("b", s / "a");
    fs::create_symlink("a", s / "b");
    CHECK(error_of({.programs = {s / "a"}, .adds = {}, .output = s / "out"}).find("symbolic links") !=
          std::string::npos);
    CHECK(error_of({.programs = {"relative/x"}, .adds = {}, .output = s / "out"}).find("absolute") !=
          std::string::npos);
    CHECK(error_of({.programs = {}, .adds = {}, .output = s / "out"}).find("nothing to build") != std::string::npos);
    CHECK(s.entries() == std::vector<std::string>{"a", "b", "script.sh"});
}

TEST_CASE("rootfs build: a failure half-way (a malformed ELF after a good program) removes the partial tree") {
    if (::access("/bin/busybox", X_OK) != 0) SKIP("no /bin/busybox (Debian's busybox-static) on this host");
    Scratch s;
    std::ofstream(s / "broken", std::ios::binary) << std::string(
                                                         "\x7f"
                                                         "ELF\x02\x01\x01",
                                                         7)
                                                  << std::string(80, '\xff');
    auto message = error_of({.programs = {"/bin/busybox", s / "broken"}, .adds = {}, .output = s / "out"});
    CHECK(message.find("broken") != std::string::npos);
    CHECK(s.entries() == std::vector<std::string>{"broken"});
}
