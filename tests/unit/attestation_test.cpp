#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>

#include "core/attestation.hpp"
#include "io/unique_fd.hpp"

using namespace nucleus::core;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed when the test ends.
struct TempTree {
    fs::path root;
    TempTree() {
        std::string pattern = (fs::temp_directory_path() / "nucleus-attest-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        root = pattern;
    }
    ~TempTree() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    fs::path operator/(const std::string& rel) const { return root / rel; }
    void write(const std::string& rel, const std::string& text) const {
        std::ofstream(root / rel, std::ios::binary | std::ios::trunc) << text;
    }
};

std::string slurp(const fs::path& p) { return nucleus::io::read_file(p.string(), 1 << 24).value(); }

// The example tree: files, a subdirectory, a symlink, awkward names.
void populate(const TempTree& t) {
    fs::create_directories(t / "etc");
    fs::create_directories(t / "usr/bin");
    t.write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    t.write("etc/hosts", "127.0.0.1 localhost\n");
    t.write("usr/bin/tool", "#!/bin/sh\necho tool\n");
    ::chmod((t / "usr/bin/tool").c_str(), 0755);
    t.write("with space\nand newline", "odd name");
    t.write("back\\slash\ttab", "");
    fs::create_symlink("../etc/passwd", t / "usr/link");
}

bool has(const std::vector<std::string>& diffs, const std::string& text) {
    return std::find(diffs.begin(), diffs.end(), text) != diffs.end();
}

std::string manifest_of(const TempTree& t) { return slurp(t / ".nucleus-rootfs-sha256"); }

}  // namespace

TEST_CASE("sha256_hex matches the FIPS 180-2 vectors") {
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("sha256_file streams a file larger than one chunk and refuses non-files") {
    TempTree t;
    std::string big(200000, 'a');
    t.write("big", big);
    auto hash = sha256_file((t / "big").string());
    REQUIRE(hash);
    CHECK(*hash == sha256_hex(big));
    REQUIRE(::mkfifo((t / "fifo").c_str(), 0600) == 0);
    CHECK_FALSE(sha256_file((t / "fifo").string()));  // refused, not hung
    CHECK_FALSE(sha256_file((t / "missing").string()));
}

TEST_CASE("attest writes a sorted, escaped manifest that verifies clean") {
    TempTree t;
    populate(t);
    auto summary = attest_rootfs(t.root.string());
    REQUIRE(summary);
    CHECK(summary->entries == 9);  // etc, 2 files, usr, usr/bin, tool, link, 2 odd names
    CHECK(summary->manifest_path == (t / ".nucleus-rootfs-sha256").string());
    std::string text = manifest_of(t);
    CHECK(summary->manifest_sha256 == sha256_hex(text));
    CHECK(summary->bytes_hashed == 30 + 20 + 20 + 8);
    CHECK(text.starts_with("# nucleus rootfs attestation v1\n"));
    CHECK(text.find("f 0644 ") != std::string::npos);
    CHECK(text.find(" with\\x20space\\nand\\x20newline\n") != std::string::npos);
    CHECK(text.find(" back\\\\slash\\x09tab\n") != std::string::npos);
    CHECK(text.find("l 0777 ") != std::string::npos);
    CHECK(text.find(" 13 " + sha256_hex("../etc/passwd") + " usr/link\n") != std::string::npos);
    CHECK(text.find(" 0 - usr/bin\n") != std::string::npos);
    CHECK(text.find(sha256_hex("root:x:0:0:root:/root:/bin/sh\n") + " etc/passwd\n") != std::string::npos);
    CHECK(text.find(".nucleus-rootfs-sha256") == std::string::npos);
    // Bytewise order: "back\\..." < "etc" < "etc/hosts" < ... < "with space..."
    CHECK(text.find(" back") < text.find(" etc\n"));
    CHECK(text.find(" etc/hosts\n") < text.find(" etc/passwd\n"));
    CHECK(text.find(" usr/link\n") < text.find(" with"));
    // One line per entry: the newline in a name did not split one.
    CHECK(std::count(text.begin(), text.end(), '\n') == 10);

    auto diffs = verify_rootfs(t.root.string());
    REQUIRE(diffs);
    CHECK(diffs->empty());
}

TEST_CASE("attesting the same tree twice gives identical bytes") {
    TempTree t;
    populate(t);
    auto first = attest_rootfs(t.root.string());
    REQUIRE(first);
    std::string before = manifest_of(t);
    auto second = attest_rootfs(t.root.string());
    REQUIRE(second);
    CHECK(manifest_of(t) == before);
    CHECK(first->manifest_sha256 == second->manifest_sha256);
    // No temporary file left behind.
    size_t names = 0;
    for (const auto& e : fs::directory_iterator(t.root))
        names += e.path().filename().string().starts_with(".nucleus") ? 1 : 0;
    CHECK(names == 1);
}

TEST_CASE("verify reports changed content, extras, removals and link targets") {
    TempTree t;
    populate(t);
    REQUIRE(attest_rootfs(t.root.string()));

    t.write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    t.write("usr/bin/evil", "payload");
    ::chmod((t / "usr/bin/evil").c_str(), 04755);
    t.write("tmpfile", "x");
    fs::remove(t / "etc/hosts");
    fs::remove(t / "usr/link");
    fs::create_symlink("/etc/shadow", t / "usr/link");
    ::chmod((t / "usr/bin/tool").c_str(), 02755);
    fs::remove(t / "with space\nand newline");
    fs::create_directory(t / "with space\nand newline");

    auto diffs = verify_rootfs(t.root.string());
    REQUIRE(diffs);
    std::string all;
    for (const auto& d : *diffs) all += d + "\n";
    INFO(all);
    CHECK(has(*diffs, "modified: etc/passwd (size 30 -> 32, sha256 differs)"));
    CHECK(has(*diffs, "extra setuid binary: usr/bin/evil (mode 4755)"));
    CHECK(has(*diffs, "extra file: tmpfile (mode 0644)"));
    CHECK(has(*diffs, "missing: etc/hosts"));
    CHECK(has(*diffs, "modified: usr/link (size 13 -> 11, symlink target differs)"));
    CHECK(has(*diffs, "modified: usr/bin/tool (mode 0755 -> 2755, now setgid)"));
    CHECK(has(*diffs, "modified: with\\x20space\\nand\\x20newline (type file -> directory)"));
    CHECK(diffs->size() == 7);
    // Path order, so the report is as deterministic as the manifest.
    CHECK(std::is_sorted(diffs->begin(), diffs->end(), [](const std::string& a, const std::string& b) {
        return a.substr(a.find(": ") + 2) < b.substr(b.find(": ") + 2);
    }));
}

TEST_CASE("verify notices an ownership change") {
    if (::geteuid() != 0) SKIP("needs root to chown");
    TempTree t;
    populate(t);
    REQUIRE(attest_rootfs(t.root.string()));
    REQUIRE(::lchown((t / "etc/passwd").c_str(), 1000, 1000) == 0);
    auto diffs = verify_rootfs(t.root.string());
    REQUIRE(diffs);
    CHECK(has(*diffs, "modified: etc/passwd (owner 0:0 -> 1000:1000)"));
}

TEST_CASE("the walk never follows symlinks and never blocks on fifos") {
    TempTree t, outside;
    outside.write("secret", "outside the tree");
    fs::create_directory_symlink(outside.root, t / "escape");
    REQUIRE(::mkfifo((t / "pipe").c_str(), 0600) == 0);
    auto summary = attest_rootfs(t.root.string());
    REQUIRE(summary);
    std::string text = manifest_of(t);
    CHECK(summary->entries == 2);
    CHECK(text.find("secret") == std::string::npos);
    CHECK(text.find("\np 0600 ") != std::string::npos);
    CHECK(text.find("\nl 0777 ") != std::string::npos);
    auto diffs = verify_rootfs(t.root.string());
    REQUIRE(diffs);
    CHECK(diffs->empty());
}

TEST_CASE("paths sort bytewise as whole strings, at any depth") {
    TempTree t;
    fs::create_directories(t / "a/b");
    t.write("a-b", "");
    t.write("a/b/c", "");
    std::string deep = "d";
    for (int i = 0; i < 200; ++i) deep += "/d";
    fs::create_directories(t / deep);
    t.write("\xff", "");
    REQUIRE(attest_rootfs(t.root.string()));
    std::string text = manifest_of(t);
    // '-' (0x2d) < '/' (0x2f): "a-b" comes after "a" but before "a/b".
    CHECK(text.find(" a\n") < text.find(" a-b\n"));
    CHECK(text.find(" a-b\n") < text.find(" a/b\n"));
    CHECK(text.find(" " + deep + "\n") != std::string::npos);
    CHECK(text.find(" " + deep + "\n") < text.find(" \xff\n"));  // high bytes sort last, stay raw
    auto diffs = verify_rootfs(t.root.string());
    REQUIRE(diffs);
    CHECK(diffs->empty());
}

TEST_CASE("sockets and device nodes are recorded by type, without a hash") {
    TempTree t;
    int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(sock >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = (t / "sock").string();
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::copy(path.begin(), path.end(), addr.sun_path);
    REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::close(sock);
    bool device = ::mknod((t / "null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)) == 0;
    REQUIRE(attest_rootfs(t.root.string()));
    std::string text = manifest_of(t);
    CHECK(text.find("\ns ") != std::string::npos);
    CHECK(text.find(" 0 - sock\n") != std::string::npos);
    if (device) CHECK(text.find(" 0 - null\n") != std::string::npos);
    if (device) CHECK(text.find("\nc 0") != std::string::npos);
    auto diffs = verify_rootfs(t.root.string());
    REQUIRE(diffs);
    CHECK(diffs->empty());
}

TEST_CASE("verify with a manifest kept outside the tree") {
    TempTree t, keep;
    populate(t);
    REQUIRE(attest_rootfs(t.root.string()));
    fs::rename(t / ".nucleus-rootfs-sha256", keep / "rootfs.manifest");
    auto diffs = verify_rootfs(t.root.string(), (keep / "rootfs.manifest").string());
    REQUIRE(diffs);
    CHECK(diffs->empty());
    CHECK_FALSE(verify_rootfs(t.root.string()));  // no default manifest now
}

TEST_CASE("the default manifest is never read through a symlink") {
    TempTree t, keep;
    populate(t);
    REQUIRE(attest_rootfs(t.root.string()));
    fs::rename(t / ".nucleus-rootfs-sha256", keep / "m");
    fs::create_symlink(keep / "m", t / ".nucleus-rootfs-sha256");
    CHECK_FALSE(verify_rootfs(t.root.string()));
}

TEST_CASE("malformed manifests are errors naming the line") {
    TempTree t;
    populate(t);
    REQUIRE(attest_rootfs(t.root.string()));
    std::string good = manifest_of(t);
    std::string hash = sha256_hex("x");
    std::string header = "# nucleus rootfs attestation v1\n";

    struct Case {
        std::string text;
        std::string want;
    };
    std::vector<Case> cases = {
        {header + "d 0755 0 0 0 - a\nf 0644 0 0 1\n", ":3: expected 7 space-separated fields"},
        {header + "f 0644 0 0 1 " + hash + " a b\n", ":2: expected 7"},
        {header + "f 0648 0 0 1 " + hash + " a\n", ":2: mode"},
        {header + "f 644 0 0 1 " + hash + " a\n", ":2: mode"},
        {header + "f 0644 0 0 1 " + hash.substr(1) + "g a\n", ":2: hash"},
        {header + "f 0644 0 0 1 " + hash.substr(1) + " a\n", ":2: hash"},
        {header + "d 0755 0 0 0 " + hash + " a\n", ":2: hash"},
        {header + "f 0644 0 0 1 " + hash + " a\\q\n", ":2: bad escape"},
        {header + "f 0644 0 0 1 " + hash + " a\\x4\n", ":2: bad escape"},
        {header + "f 0644 0 0 1 " + hash + " a\\x41\n", ":2: path is not canonically escaped"},
        {header + "f 0644 0 0 1 " + hash + " a\\\n", ":2: bad escape"},
        {header + "f 0644 0 0 1 " + hash + " ../etc/shadow\n", ":2: path component \"..\""},
        {header + "f 0644 0 0 1 " + hash + " usr/../../x\n", ":2: path component \"..\""},
        {header + "f 0644 0 0 1 " + hash + " /etc/shadow\n", ":2: absolute path"},
        {header + "f 0644 0 0 1 " + hash + " a//b\n", ":2: path component"},
        {header + "f 0644 0 0 1 " + hash + " a\\x00b\n", ":2: NUL byte"},
        {header + "x 0644 0 0 1 " + hash + " a\n", ":2: bad type"},
        {header + "f 0644 -1 0 1 " + hash + " a\n", ":2: bad uid"},
        {header + "f 0644 0 4294967296 1 " + hash + " a\n", ":2: bad gid"},
        {header + "f 0644 0 0 99999999999999999999 " + hash + " a\n", ":2: bad size"},
        {header + "f 0644 0 0 1 " + hash + " b\nf 0644 0 0 1 " + hash + " a\n", ":3: paths not sorted"},
        {header + "f 0644 0 0 1 " + hash + " a\nf 0644 0 0 1 " + hash + " a\n", ":3: paths not sorted or repeated"},
        {header + "\n", ":2: expected 7"},
        {header + "f 0644 0 0 1 " + hash + " a", ":2: no newline at the end"},
        {"f 0644 0 0 1 " + hash + " a\n", ":1: expected \"# nucleus rootfs attestation v1\""},
        {"", ":1: empty manifest"},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        t.write(".nucleus-rootfs-sha256", c.text);
        auto result = verify_rootfs(t.root.string());
        REQUIRE_FALSE(result);
        INFO(result.error().message);
        CHECK(result.error().message.find(c.want) != std::string::npos);
    }

    // Corrupting one line of a real manifest names that line.
    std::string bad = good;
    size_t third = bad.find('\n', bad.find('\n') + 1) + 1;  // start of line 3
    bad.replace(third, 1, "z");
    t.write(".nucleus-rootfs-sha256", bad);
    auto result = verify_rootfs(t.root.string());
    REQUIRE_FALSE(result);
    CHECK(result.error().message.find(".nucleus-rootfs-sha256:3: bad type") != std::string::npos);
}

TEST_CASE("a manifest over 256 MiB is refused before it is read") {
    TempTree t;
    t.write("a", "x");
    auto fd = nucleus::io::open_fd((t / ".nucleus-rootfs-sha256").string(), O_WRONLY | O_CREAT, 0644);
    REQUIRE(fd);
    REQUIRE(::ftruncate(fd->get(), (off_t{256} << 20) + 1) == 0);  // sparse: no disk used
    auto result = verify_rootfs(t.root.string());
    REQUIRE_FALSE(result);
    CHECK(result.error().message.find("larger than") != std::string::npos);
}
