// libFuzzer target for the ELF reader and the ld.so.cache reader
// (isolation/elf.cpp): `nucleus rootfs build --from-host` runs them on every
// file it copies, and a file is whatever the host holds. The first byte
// picks the parser (even: ELF, odd: ld.so.cache); the rest is the file. A
// parser may refuse anything, but must not crash, hang, over-allocate or
// read out of bounds (run under ASan + UBSan by scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "isolation/elf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string_view file(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (data[0] % 2 == 0) {
        auto info = nucleus::isolation::parse_elf(file);
        // What a parse returns stays within what the file could hold.
        if (info && info->needed.size() > file.size()) __builtin_trap();
    } else {
        auto entries = nucleus::isolation::parse_ld_so_cache(file);
        if (entries && entries->size() > file.size()) __builtin_trap();
    }
    return 0;
}
