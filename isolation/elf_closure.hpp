// The shared-library closure of an ELF program, found the way the dynamic
// loader would find it at run time, without running anything.
//
// The search order for a DT_NEEDED name (ld.so(8), glibc elf/dl-load.c
// _dl_map_object):
//   0. a name already loaded (a DT_NEEDED or DT_SONAME seen earlier in the
//      breadth-first load order) is that object again;
//   1. a name with a slash is a path, used as it is;
//   2. unless the requesting object has DT_RUNPATH: the DT_RPATH of the
//      requesting object, then of the object that loaded it, and so on up
//      to the program (an object with DT_RUNPATH has no effective DT_RPATH);
//   3. LD_LIBRARY_PATH: ignored here, as it would be for a setuid program
//      and is for the sandbox (its environment is the spec's, not ours);
//   4. the requesting object's own DT_RUNPATH (not inherited);
//   5. /etc/ld.so.cache, then 6. the default directories, both skipped when
//      the requesting object has DF_1_NODEFLIB.
// $ORIGIN is the directory of the object as it was found (for the program:
// its canonical path), $LIB and $PLATFORM the loader's values. A candidate
// of another class or machine is skipped, as the loader skips it.
// glibc-hwcaps subdirectories are not searched: the baseline library they
// shadow is what we copy, and it runs on every CPU.
#pragma once

#include <string>
#include <vector>

#include "io/error.hpp"
#include "isolation/elf.hpp"

namespace nucleus::isolation {

struct LoaderConfig {
    // Every path below is looked up under `root` ("" = this host); tests
    // build a fake tree. Paths in results never include it.
    std::string root;
    std::vector<LdCacheEntry> cache;  // empty: no /etc/ld.so.cache
    std::vector<std::string> default_dirs;  // after the cache
    std::string lib_token = "lib";  // $LIB
    std::string platform_token;  // $PLATFORM (AT_PLATFORM)
};

// The host's loader: `root`/etc/ld.so.cache when it is there and
// well-formed (a malformed cache is an error, not silently skipped), and the
// default directories of glibc on this machine: the multiarch ones
// (/lib/<triplet>, /usr/lib/<triplet>) where they exist, /lib64 and
// /usr/lib64 on 64-bit machines without them, then /lib and /usr/lib.
Result<LoaderConfig> host_loader_config(const std::string& root = "");

struct ElfClosure {
    // Every file the program needs, absolute, in load order: the program,
    // its interpreter, then libraries breadth-first. Each is the path the
    // loader opens, which may be a symlink (the copier keeps the link and
    // its target).
    std::vector<std::string> files;
    // "libfoo.so.1 (needed by /usr/bin/x)": names no search found.
    std::vector<std::string> missing;
};

// Resolves the closure of the ELF file at `path` (absolute). Errors: the
// file is missing, not ELF, or malformed (its or a library's), or a name
// cannot be searched for (a relative path with a slash).
Result<ElfClosure> resolve_elf_closure(const std::string& path, const LoaderConfig& loader);

// Reads an ELF file's header and dynamic section (mmap'd, never executed).
Result<ElfInfo> read_elf_file(const std::string& path);

// Expands $ORIGIN, ${ORIGIN}, $LIB, ${LIB}, $PLATFORM and ${PLATFORM} in one
// search directory; other text is kept as it is.
std::string expand_dst(const std::string& dir, const std::string& origin, const LoaderConfig& loader);

}  // namespace nucleus::isolation
