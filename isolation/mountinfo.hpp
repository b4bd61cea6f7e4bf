// /proc/PID/mountinfo, parsed once for the tree: where cgroup2 is mounted
// (isolation/cgroup.cpp), whether a sandbox's mounts carry the flags its
// plan promised (isolation/mount_verify.cpp), and what the benchmarks count.
//
// The text is the kernel's, but a sandbox shapes it (its mount points are
// paths it may choose, through volumes), so the parser is pure, bounded by
// its input, and fuzzed (tests/fuzz/mountinfo_fuzz.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nucleus::isolation {

// One line (proc_pid_mountinfo(5)):
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
struct MountInfoEntry {
    uint64_t mount_id = 0;
    uint64_t parent_id = 0;
    std::string device;  // "major:minor"
    std::string root;  // decoded: the bound sub-tree of the filesystem
    std::string mount_point;  // decoded, as the reading process sees it
    std::string options;  // per-mount: "ro,nosuid,nodev,relatime"
    std::vector<std::string> optional_fields;  // "shared:1", "master:2", ...
    std::string fstype;  // "tmpfs", "cgroup2", "fuse.sshfs"
    std::string source;  // decoded
    std::string super_options;  // per-superblock

    // Whether `option` is one of the comma-separated per-mount options.
    bool has_option(std::string_view option) const;
};

// Every well-formed line, in the kernel's order (a mount after the mounts it
// covers). A malformed line (too few fields, no " - " separator, ids that
// are not numbers) is skipped: the kernel writes none, but a read cut off at
// its bound ends in one.
std::vector<MountInfoEntry> parse_mountinfo(std::string_view text);

// A path field with the kernel's octal escapes decoded (seq_file's
// mangle_path: \040 space, \011 tab, \012 newline, \134 backslash); any
// other backslash is kept as it is.
std::string decode_mountinfo_field(std::string_view field);

}  // namespace nucleus::isolation
