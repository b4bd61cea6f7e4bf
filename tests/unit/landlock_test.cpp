#include <catch2/catch_test_macros.hpp>

#include "isolation/kernel_abi.hpp"
#include "isolation/landlock.hpp"

using namespace nucleus::isolation;
namespace fs = nucleus::kabi::landlock_fs;

TEST_CASE("Landlock rights are masked to what each ABI handles") {
    CHECK(landlock_handled_rights(0) == 0);
    CHECK((landlock_handled_rights(1) & fs::refer) == 0);
    CHECK((landlock_handled_rights(2) & fs::refer) != 0);
    CHECK((landlock_handled_rights(3) & fs::truncate) != 0);
    CHECK((landlock_handled_rights(4) & fs::ioctl_dev) == 0);
    CHECK((landlock_handled_rights(5) & fs::ioctl_dev) != 0);
    CHECK((landlock_rights(LandlockAccess::ReadOnly, 7) & (fs::write_file | fs::execute)) == 0);
    CHECK((landlock_rights(LandlockAccess::ReadExec, 7) & fs::execute) != 0);
    CHECK((landlock_rights(LandlockAccess::ReadWrite, 7) & fs::execute) == 0);
    CHECK((landlock_rights(LandlockAccess::Device, 7) & fs::make_reg) == 0);
}

TEST_CASE("a ruleset is created at the kernel's ABI") {
    int abi = landlock_abi();
    if (abi == 0) SKIP("Landlock is not enabled in this kernel (LSM list)");
    auto ruleset = create_landlock_ruleset(abi);
    REQUIRE(ruleset);
    CHECK(ruleset->fd.valid());
    CHECK(ruleset->scoped == (abi >= 6));
}
