// libFuzzer target for the mountinfo parser (isolation/mountinfo.hpp). The
// kernel writes the text, but a sandbox chooses the paths in it (volume
// targets, its own mounts as seen through /proc/PID/mountinfo), so the
// parser must take any bytes without crashing, hanging or reading out of
// bounds (run under ASan + UBSan by scripts/fuzz.sh). Every entry it returns
// is checked against what the text can hold.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "isolation/cgroup.hpp"
#include "isolation/mountinfo.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto entries = nucleus::isolation::parse_mountinfo(text);
    size_t lines = 1;
    for (char c : text) lines += c == '\n';
    if (entries.size() > lines) std::abort();
    for (const auto& e : entries) {
        // Decoding only shortens; the fields come from one line.
        if (e.mount_point.size() + e.root.size() + e.options.size() + e.fstype.size() > size) std::abort();
        if (e.mount_point.empty() || e.fstype.empty()) std::abort();
        (void)e.has_option("ro");
    }
    (void)nucleus::isolation::find_cgroup2_mount(text);
    (void)nucleus::isolation::decode_mountinfo_field(text);
    return 0;
}
