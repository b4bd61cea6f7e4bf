#include <catch2/catch_test_macros.hpp>

#include "isolation/mountinfo.hpp"

using namespace nucleus::isolation;

TEST_CASE("a mountinfo line is split into all its fields") {
    auto entries =
        parse_mountinfo("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n");
    REQUIRE(entries.size() == 1);
    const MountInfoEntry& e = entries[0];
    CHECK(e.mount_id == 36);
    CHECK(e.parent_id == 35);
    CHECK(e.device == "98:0");
    CHECK(e.root == "/mnt1");
    CHECK(e.mount_point == "/mnt2");
    CHECK(e.options == "rw,noatime");
    CHECK(e.optional_fields == std::vector<std::string>{"master:1", "shared:7"});
    CHECK(e.fstype == "ext3");
    CHECK(e.source == "/dev/root");
    CHECK(e.super_options == "rw,errors=continue");
    CHECK(e.has_option("rw"));
    CHECK(e.has_option("noatime"));
    CHECK_FALSE(e.has_option("no"));  // a prefix of an option is not the option
    CHECK_FALSE(e.has_option("atime"));  // nor is a suffix
    CHECK_FALSE(e.has_option("errors=continue"));  // a superblock option, not a mount option
}

TEST_CASE("a line without optional fields and one without super options both parse") {
    auto entries = parse_mountinfo("1 0 0:1 / / rw - rootfs rootfs rw\n2 1 0:2 / /proc rw - proc proc\n");
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].optional_fields.empty());
    CHECK(entries[0].fstype == "rootfs");
    CHECK(entries[1].mount_point == "/proc");
    CHECK(entries[1].super_options.empty());
}

TEST_CASE("malformed lines are skipped, the well-formed ones around them kept") {
    auto entries = parse_mountinfo(
        "\n"
        "garbage\n"
        "x 1 0:1 / /a rw - tmpfs t rw\n"  // id not a number
        "10 1 0:1 / /b rw shared:1 tmpfs t rw\n"  // no separator
        "11 1 0:1 / /c rw -\n"  // nothing after it
        "12 1 0:1 / /d rw - tmpfs t rw\n"
        "13 1 0:1 / /e rw - tmpfs t rw");  // the last line, cut off before its newline
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].mount_point == "/d");
    CHECK(entries[1].mount_point == "/e");
    CHECK(parse_mountinfo("").empty());
}

TEST_CASE("paths are decoded, the options and the fstype are not") {
    auto entries = parse_mountinfo("7 1 0:1 /a\\040b /data\\040dir\\134x rw - fuse.my\\040fs src\\011tab rw\n");
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].root == "/a b");
    CHECK(entries[0].mount_point == "/data dir\\x");
    CHECK(entries[0].source == "src\ttab");
    CHECK(entries[0].fstype == "fuse.my\\040fs");
    // Invalid UTF-8 in a path survives as bytes.
    auto bytes = parse_mountinfo("8 1 0:1 / /\xff\xfe rw - tmpfs t rw\n");
    REQUIRE(bytes.size() == 1);
    CHECK(bytes[0].mount_point == "/\xff\xfe");
}
