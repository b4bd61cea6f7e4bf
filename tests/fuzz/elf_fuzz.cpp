// libFuzzer target for the root filesystem inputs: the ELF reader and the
// ld.so.cache reader (isolation/elf.cpp), which `nucleus rootfs build
// --from-host` runs on every file it copies (a file is whatever the host
// holds), and the closure manifest reader (core/closure_manifest.cpp), with
// the structured-attributes reader behind `nucleus rootfs closure-manifest`.
// The first byte picks the parser (modulo 3: ELF, ld.so.cache, manifest);
// the rest is the file. A
// parser may refuse anything, but must not crash, hang, over-allocate or
// read out of bounds (run under ASan + UBSan by scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/closure_manifest.hpp"
#include "isolation/elf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string_view file(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (data[0] % 3 == 0) {
        auto info = nucleus::isolation::parse_elf(file);
        // What a parse returns stays within what the file could hold.
        if (info && info->needed.size() > file.size()) __builtin_trap();
    } else if (data[0] % 3 == 1) {
        auto entries = nucleus::isolation::parse_ld_so_cache(file);
        if (entries && entries->size() > file.size()) __builtin_trap();
    } else {
        auto manifest = nucleus::core::parse_closure_manifest(file, "fuzz.json");
        // Whatever parses writes back to text that parses to the same.
        if (manifest) {
            auto again =
                nucleus::core::parse_closure_manifest(nucleus::core::closure_manifest_text(*manifest), "again");
            if (!again ||
                nucleus::core::closure_manifest_text(*again) != nucleus::core::closure_manifest_text(*manifest))
                __builtin_trap();
        }
        auto attrs = nlohmann::json::parse(file, nullptr, false);
        if (!attrs.is_discarded()) (void)nucleus::core::closure_manifest_from_attrs(attrs);
    }
    return 0;
}
