#include "isolation/landlock.hpp"

#include <unistd.h>

#include "isolation/kernel_abi.hpp"

namespace nucleus::isolation {

namespace fs = kabi::landlock_fs;

int landlock_abi() {
    long abi = ::syscall(kabi::sys_landlock_create_ruleset, nullptr, 0, kabi::landlock_create_ruleset_version);
    return abi < 0 ? 0 : static_cast<int>(abi);
}

uint64_t landlock_handled_rights(int abi) {
    if (abi <= 0) return 0;
    uint64_t rights = fs::execute | fs::write_file | fs::read_file | fs::read_dir | fs::remove_dir | fs::remove_file |
                      fs::make_char | fs::make_dir | fs::make_reg | fs::make_sock | fs::make_fifo | fs::make_block |
                      fs::make_sym;
    if (abi >= 2) rights |= fs::refer;
    if (abi >= 3) rights |= fs::truncate;
    if (abi >= 5) rights |= fs::ioctl_dev;
    return rights;
}

uint64_t landlock_rights(LandlockAccess access, int abi) {
    const uint64_t read = fs::read_file | fs::read_dir;
    const uint64_t write = fs::write_file | fs::remove_dir | fs::remove_file | fs::make_dir | fs::make_reg |
                           fs::make_sock | fs::make_fifo | fs::make_sym | fs::refer | fs::truncate;
    uint64_t rights = 0;
    switch (access) {
        case LandlockAccess::ReadOnly:
            rights = read;
            break;
        case LandlockAccess::ReadExec:
            rights = read | fs::execute;
            break;
        case LandlockAccess::ReadWrite:
            rights = read | write;
            break;
        case LandlockAccess::ReadWriteExec:
            rights = read | write | fs::execute;
            break;
        case LandlockAccess::Device:
            rights = read | fs::write_file | fs::truncate | fs::ioctl_dev;
            break;
    }
    return rights & landlock_handled_rights(abi);
}

Result<LandlockRuleset> create_landlock_ruleset(int abi) {
    kabi::LandlockRulesetAttr attr{};
    attr.handled_access_fs = landlock_handled_rights(abi);
    size_t size = sizeof(uint64_t);  // ABI 1-3: handled_access_fs only
    if (abi >= 4) size = 2 * sizeof(uint64_t);
    if (abi >= 6) {
        attr.scoped = kabi::landlock_scope_abstract_unix_socket | kabi::landlock_scope_signal;
        size = sizeof attr;
    }
    long fd = ::syscall(kabi::sys_landlock_create_ruleset, &attr, size, 0);
    if (fd < 0) return Error::from_errno("landlock_create_ruleset");
    // The ruleset fd from landlock_create_ruleset(2) is already O_CLOEXEC.
    return LandlockRuleset{.fd = io::unique_fd(static_cast<int>(fd)), .abi = abi, .scoped = abi >= 6};
}

}  // namespace nucleus::isolation
