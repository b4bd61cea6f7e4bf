// ELF files and the dynamic loader's cache, read as untrusted bytes.
//
// What `nucleus rootfs build --from-host` needs to find a program's shared
// library closure without running it (or ldd, which runs it): the
// interpreter (PT_INTERP), DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME and
// DF_1_NODEFLIB from the dynamic section, and /etc/ld.so.cache's soname ->
// path entries. Both parsers take the whole file as a byte view and check
// every offset, size and count against it (elf(5); glibc's
// elf/cache.c and sysdeps/generic/dl-cache.h for the cache layout); they
// allocate only what they return and are fuzzed by tests/fuzz/elf_fuzz.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/error.hpp"

namespace nucleus::isolation {

struct ElfInfo {
    bool is_64 = false;
    bool little_endian = true;
    uint16_t machine = 0;  // EM_*: a library of another machine or class is skipped by the loader
    uint16_t type = 0;  // ET_EXEC, ET_DYN, ...
    std::optional<std::string> interpreter;  // PT_INTERP
    std::vector<std::string> needed;  // DT_NEEDED, in order
    std::optional<std::string> rpath;  // DT_RPATH (colon-separated, unexpanded)
    std::optional<std::string> runpath;  // DT_RUNPATH
    std::optional<std::string> soname;  // DT_SONAME
    bool nodeflib = false;  // DF_1_NODEFLIB: no cache, no default directories

    // The loader accepts a library for a program when class and machine match.
    bool compatible_with(const ElfInfo& other) const { return is_64 == other.is_64 && machine == other.machine; }
};

// True when `data` starts with the ELF magic (\x7fELF).
bool has_elf_magic(std::string_view data);

// Parses an ELF file's header, program headers and dynamic section. A
// static executable has no interpreter and no dynamic entries. Errors name
// what is malformed ("program header 3 runs past the end of the file").
Result<ElfInfo> parse_elf(std::string_view data);

// One soname -> path entry of /etc/ld.so.cache ("glibc-ld.so.cache1.1",
// alone or after the old "ld.so-1.7.0" table).
struct LdCacheEntry {
    std::string soname;
    std::string path;
    int32_t flags = 0;  // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64, ...
    uint64_t hwcap = 0;  // non-zero: a glibc-hwcaps or legacy hwcap subdirectory
};

// Entries in the cache's order (the loader takes the first that fits).
Result<std::vector<LdCacheEntry>> parse_ld_so_cache(std::string_view data);

}  // namespace nucleus::isolation
