// Kernel interfaces newer than Debian 12's linux-libc-dev (6.1) headers, or
// that glibc 2.36 does not wrap: clone3, mount_setattr, the new mount API,
// Landlock ABI 4-7. Values are from include/uapi/linux/*.h of Linux 6.18.
//
// Every kernel constant the tree spells itself lives here: no file defines
// one or writes a syscall number or flag value as a literal. A leaf header
// (kernel headers only), so io/ below isolation/ may include it too.
#pragma once

#include <cstdint>

#include <linux/sched.h>
#include <sys/syscall.h>

namespace nucleus::kabi {

#ifndef SYS_clone3
constexpr long sys_clone3 = 435;
#else
constexpr long sys_clone3 = SYS_clone3;
#endif
constexpr long sys_mount_setattr = 442;
constexpr long sys_landlock_create_ruleset = 444;
constexpr long sys_landlock_add_rule = 445;
constexpr long sys_landlock_restrict_self = 446;
constexpr long sys_close_range = 436;
constexpr long sys_pidfd_send_signal = 424;
constexpr long sys_pidfd_getfd = 438;
constexpr long sys_open_tree = 428;
constexpr long sys_move_mount = 429;

constexpr uint64_t clone_newtime = 0x00000080;
constexpr uint64_t clone_into_cgroup = 0x200000000ULL;

struct CloneArgs {  // struct clone_args, CLONE_ARGS_SIZE_VER2 (88 bytes)
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};
static_assert(sizeof(CloneArgs) == 88);

// mount_setattr(2)
struct MountAttr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};
constexpr uint64_t mount_attr_rdonly = 0x00000001;
constexpr uint64_t mount_attr_nosuid = 0x00000002;
constexpr uint64_t mount_attr_nodev = 0x00000004;
constexpr uint64_t mount_attr_noexec = 0x00000008;
constexpr unsigned at_recursive = 0x8000;
// open_tree(2), move_mount(2)
constexpr unsigned open_tree_clone = 1;
constexpr unsigned move_mount_f_empty_path = 0x00000004;

// personality(2): the query value (returns the current persona, sets none).
constexpr uint64_t personality_query = 0xffffffff;

// Landlock (include/uapi/linux/landlock.h)
struct LandlockRulesetAttr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;  // ABI >= 4
    uint64_t scoped;  // ABI >= 6
};
struct LandlockPathBeneathAttr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));
constexpr unsigned landlock_create_ruleset_version = 1u << 0;
constexpr int landlock_rule_path_beneath = 1;

namespace landlock_fs {
constexpr uint64_t execute = 1ULL << 0;
constexpr uint64_t write_file = 1ULL << 1;
constexpr uint64_t read_file = 1ULL << 2;
constexpr uint64_t read_dir = 1ULL << 3;
constexpr uint64_t remove_dir = 1ULL << 4;
constexpr uint64_t remove_file = 1ULL << 5;
constexpr uint64_t make_char = 1ULL << 6;
constexpr uint64_t make_dir = 1ULL << 7;
constexpr uint64_t make_reg = 1ULL << 8;
constexpr uint64_t make_sock = 1ULL << 9;
constexpr uint64_t make_fifo = 1ULL << 10;
constexpr uint64_t make_block = 1ULL << 11;
constexpr uint64_t make_sym = 1ULL << 12;
constexpr uint64_t refer = 1ULL << 13;  // ABI 2
constexpr uint64_t truncate = 1ULL << 14;  // ABI 3
constexpr uint64_t ioctl_dev = 1ULL << 15;  // ABI 5
}  // namespace landlock_fs
constexpr uint64_t landlock_scope_abstract_unix_socket = 1ULL << 0;  // ABI 6
constexpr uint64_t landlock_scope_signal = 1ULL << 1;  // ABI 6

// getsockopt(2) on a socket accepted through an nftables redirect: the
// destination the client asked for (conntrack's original tuple).
// SO_ORIGINAL_DST (<linux/netfilter_ipv4.h>, level SOL_IP) and
// IP6T_SO_ORIGINAL_DST (<linux/netfilter_ipv6/ip6_tables.h>, level SOL_IPV6).
constexpr int so_original_dst = 80;
constexpr int ip6t_so_original_dst = 80;

}  // namespace nucleus::kabi
