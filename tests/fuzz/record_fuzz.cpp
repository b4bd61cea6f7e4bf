// libFuzzer target for the daemon's records read back (core/daemon/
// record_store.hpp, sandbox_record.hpp): a crash, a full disk or a hostile
// writer can leave anything in <state-dir>/daemon/<id>.json. The file's
// text goes through last_record and decode_record as recovery reads it;
// they may refuse anything but must not crash, hang, leak or throw, and a
// record they accept must encode and decode to the same line again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/daemon/record_store.hpp"
#include "core/daemon/sandbox_record.hpp"

using namespace nucleus::core::daemon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto last = last_record(text);
    if (last.record.is_discarded()) return 0;
    auto decoded = decode_record(last.record);
    if (!decoded) return 0;
    (void)sandbox_json(*decoded);
    std::string line = encode_record(*decoded);
    auto again = last_record(line);
    auto redecoded = decode_record(again.record);
    if (!redecoded || encode_record(*redecoded) != line || again.appendable_lines != 1) std::abort();
    return 0;
}
