#include <catch2/catch_test_macros.hpp>

#include "isolation/launch_plan.hpp"
#include "isolation/mountinfo.hpp"

using namespace nucleus::isolation;

namespace {
const std::string mountinfo =
    "100 99 0:50 / / ro,nosuid,nodev,relatime - tmpfs tmpfs ro\n"
    "101 100 254:0 /usr /usr ro,nosuid,nodev,relatime - ext4 /dev/vda rw\n"
    "102 100 0:51 / /workspace rw,nosuid,nodev,noexec,relatime - ext4 /dev/vda rw\n"
    "103 100 0:52 / /tmp rw,nosuid,nodev,relatime - tmpfs tmpfs rw\n"
    "104 103 0:53 / /tmp rw,relatime - tmpfs tmpfs rw\n";
}

TEST_CASE("mount expectations pass when every promised flag is present") {
    std::vector<MountExpectation> want{
        {.path = "/", .read_only = true, .nosuid = false, .nodev = false, .noexec = false},
        {.path = "/usr", .read_only = true, .nosuid = true, .nodev = true, .noexec = false},
        {.path = "/workspace", .read_only = false, .nosuid = true, .nodev = true, .noexec = true}};
    CHECK(verify_mounts(mountinfo, want));
}

TEST_CASE("a missing mount or flag is refused, judged on the topmost mount") {
    auto missing = verify_mounts(
        mountinfo, {{.path = "/context", .read_only = true, .nosuid = false, .nodev = false, .noexec = false}});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message == "mount /context is missing");
    auto exec = verify_mounts(mountinfo,
                              {{.path = "/usr", .read_only = false, .nosuid = false, .nodev = false, .noexec = true}});
    REQUIRE_FALSE(exec);
    CHECK(exec.error().message.find("lacks noexec") != std::string::npos);
    // /tmp's top mount (104) dropped nosuid.
    auto over = verify_mounts(mountinfo,
                              {{.path = "/tmp", .read_only = false, .nosuid = true, .nodev = false, .noexec = false}});
    REQUIRE_FALSE(over);
    CHECK(over.error().message.find("lacks nosuid") != std::string::npos);
}

TEST_CASE("mountinfo's octal escapes are decoded before paths are compared") {
    CHECK(decode_mountinfo_field("/data\\040dir") == "/data dir");
    CHECK(decode_mountinfo_field("/a\\011b\\012c\\134d") == "/a\tb\nc\\d");
    CHECK(decode_mountinfo_field("/plain") == "/plain");
    CHECK(decode_mountinfo_field("/trailing\\04") == "/trailing\\04");  // not an escape: kept as is
    const std::string escaped =
        "100 99 0:50 / / ro,nosuid,nodev,relatime - tmpfs tmpfs ro\n"
        "101 100 254:0 /srv /data\\040dir ro,nosuid,nodev,relatime - ext4 /dev/vda rw\n"
        "102 100 254:0 /srv /back\\134slash rw,nosuid,nodev,relatime - ext4 /dev/vda rw\n";
    CHECK(verify_mounts(escaped,
                        {{.path = "/data dir", .read_only = true, .nosuid = true, .nodev = true, .noexec = false}}));
    CHECK(verify_mounts(
        escaped, {{.path = "/back\\slash", .read_only = false, .nosuid = true, .nodev = true, .noexec = false}}));
    CHECK_FALSE(verify_mounts(
        escaped, {{.path = "/data\\040dir", .read_only = true, .nosuid = false, .nodev = false, .noexec = false}}));
}
