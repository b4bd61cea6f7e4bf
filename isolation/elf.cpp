#include "isolation/elf.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace nucleus::isolation {

namespace {

// elf(5) constants, spelled here so the parser needs no <elf.h> of a
// particular libc and reads both classes and byte orders.
constexpr uint8_t elfclass32 = 1, elfclass64 = 2;
constexpr uint8_t elfdata2lsb = 1, elfdata2msb = 2;
constexpr uint32_t pt_load = 1, pt_dynamic = 2, pt_interp = 3;
constexpr uint64_t dt_null = 0, dt_needed = 1, dt_strtab = 5, dt_strsz = 10, dt_soname = 14, dt_rpath = 15,
                   dt_runpath = 29, dt_flags_1 = 0x6ffffffb;
constexpr uint64_t df_1_nodeflib = 0x800;
constexpr uint16_t pn_xnum = 0xffff;  // the real e_phnum is in section header 0's sh_info

// Bounds on what a hostile file can make us allocate or walk.
constexpr size_t max_needed = 4096;
constexpr size_t max_string = 4096;  // PATH_MAX: a longer name or path is no library

// Reads integers of the file's byte order at checked offsets.
class Reader {
public:
    Reader(std::string_view data, bool little) : data_(data), little_(little) {}

    bool fits(uint64_t offset, uint64_t size) const { return offset <= data_.size() && size <= data_.size() - offset; }

    uint64_t get(uint64_t offset, int bytes) const {
        uint64_t value = 0;
        for (int i = 0; i < bytes; ++i) {
            uint64_t byte =
                static_cast<unsigned char>(data_[offset + static_cast<uint64_t>(little_ ? i : bytes - 1 - i)]);
            value |= byte << (8 * i);
        }
        return value;
    }

    // A NUL-terminated string starting at `offset` and ending before `limit`.
    std::optional<std::string> string_at(uint64_t offset, uint64_t limit) const {
        limit = std::min<uint64_t>(limit, data_.size());
        if (offset >= limit) return std::nullopt;
        const char* start = data_.data() + offset;
        size_t span = static_cast<size_t>(std::min<uint64_t>(limit - offset, max_string + 1));
        const void* nul = std::memchr(start, '\0', span);
        if (!nul) return std::nullopt;
        return std::string(start, static_cast<const char*>(nul));
    }

private:
    std::string_view data_;
    bool little_;
};

struct Segment {
    uint32_t type = 0;
    uint64_t offset = 0, vaddr = 0, filesz = 0;
};

// The field layout of one class (elf(5): Elf32_* and Elf64_*).
struct Layout {
    int word;  // 4 or 8: addresses, offsets, sizes, d_tag, d_val
    uint64_t phoff_at, phentsize_at, phnum_at, shoff_at, shentsize_at;
    uint64_t ph_size, ph_offset_at, ph_vaddr_at, ph_filesz_at;
    uint64_t sh_info_at;
};
constexpr Layout layout32{4, 28, 42, 44, 32, 46, 32, 4, 8, 16, 28};
constexpr Layout layout64{8, 32, 54, 56, 40, 58, 56, 8, 16, 32, 44};

Result<std::vector<Segment>> read_segments(const Reader& r, const Layout& l) {
    uint64_t phoff = r.get(l.phoff_at, l.word);
    uint64_t phentsize = r.get(l.phentsize_at, 2);
    uint64_t phnum = r.get(l.phnum_at, 2);
    if (phnum == pn_xnum) {
        uint64_t shoff = r.get(l.shoff_at, l.word);
        uint64_t shentsize = r.get(l.shentsize_at, 2);
        if (shentsize < l.sh_info_at + 4 || !r.fits(shoff, shentsize))
            return Error::plain("e_phnum is PN_XNUM but section header 0 is not in the file");
        phnum = r.get(shoff + l.sh_info_at, 4);
    }
    if (phnum == 0) return std::vector<Segment>{};
    if (phentsize < l.ph_size)
        return Error::plain("program header size " + std::to_string(phentsize) + " is too small");
    if (phnum > (uint64_t{1} << 20) || !r.fits(phoff, phnum * phentsize))
        return Error::plain("the program header table runs past the end of the file");
    std::vector<Segment> segments;
    segments.reserve(static_cast<size_t>(phnum));
    for (uint64_t i = 0; i < phnum; ++i) {
        uint64_t at = phoff + i * phentsize;
        segments.push_back({static_cast<uint32_t>(r.get(at, 4)), r.get(at + l.ph_offset_at, l.word),
                            r.get(at + l.ph_vaddr_at, l.word), r.get(at + l.ph_filesz_at, l.word)});
    }
    return segments;
}

// The file offset of a virtual address, through the PT_LOAD segment that
// maps it from the file (as the loader sees DT_STRTAB).
std::optional<uint64_t> file_offset(const std::vector<Segment>& segments, uint64_t vaddr) {
    for (const auto& s : segments) {
        if (s.type != pt_load || vaddr < s.vaddr || vaddr - s.vaddr >= s.filesz) continue;
        return s.offset + (vaddr - s.vaddr);
    }
    return std::nullopt;
}

Status read_interpreter(const Reader& r, const Segment& s, ElfInfo& info) {
    if (!r.fits(s.offset, s.filesz)) return Error::plain("PT_INTERP runs past the end of the file");
    auto path = r.string_at(s.offset, s.offset + s.filesz);
    if (!path || path->empty()) return Error::plain("PT_INTERP is not a NUL-terminated path");
    info.interpreter = std::move(*path);
    return {};
}

struct DynamicEntry {
    uint64_t tag, value;
};

Status read_dynamic(const Reader& r, const Layout& l, const Segment& dyn, const std::vector<Segment>& segments,
                    ElfInfo& info) {
    if (!r.fits(dyn.offset, dyn.filesz)) return Error::plain("PT_DYNAMIC runs past the end of the file");
    std::vector<DynamicEntry> entries;
    std::optional<uint64_t> strtab, strsz;
    uint64_t entry_size = 2 * static_cast<uint64_t>(l.word);
    for (uint64_t at = dyn.offset; at + entry_size <= dyn.offset + dyn.filesz; at += entry_size) {
        DynamicEntry e{r.get(at, l.word), r.get(at + static_cast<uint64_t>(l.word), l.word)};
        if (e.tag == dt_null) break;
        if (e.tag == dt_strtab) strtab = e.value;
        else if (e.tag == dt_strsz) strsz = e.value;
        else if (e.tag == dt_flags_1) info.nodeflib = (e.value & df_1_nodeflib) != 0;
        else if (e.tag == dt_needed || e.tag == dt_soname || e.tag == dt_rpath || e.tag == dt_runpath)
            entries.push_back(e);
        if (entries.size() > max_needed)
            return Error::plain("more than " + std::to_string(max_needed) + " dynamic names");
    }
    if (entries.empty()) return {};
    if (!strtab) return Error::plain("the dynamic section names libraries but has no DT_STRTAB");
    auto table = file_offset(segments, *strtab);
    if (!table) return Error::plain("DT_STRTAB is not inside any loaded segment");
    uint64_t limit = strsz && *strsz <= UINT64_MAX - *table ? *table + *strsz : UINT64_MAX;
    for (const auto& e : entries) {
        auto text = e.value <= UINT64_MAX - *table ? r.string_at(*table + e.value, limit) : std::nullopt;
        if (!text) return Error::plain("a dynamic string is outside DT_STRTAB or not NUL-terminated");
        if (e.tag == dt_needed) {
            if (text->empty()) return Error::plain("an empty DT_NEEDED name");
            info.needed.push_back(std::move(*text));
        } else if (e.tag == dt_soname) {
            info.soname = std::move(*text);
        } else if (e.tag == dt_rpath) {
            info.rpath = std::move(*text);
        } else {
            info.runpath = std::move(*text);
        }
    }
    return {};
}

}  // namespace

bool has_elf_magic(std::string_view data) {
    return data.size() >= 4 && data.substr(0, 4) ==
                                   "\x7f"
                                   "ELF";
}

Result<ElfInfo> parse_elf(std::string_view data) {
    if (!has_elf_magic(data)) return Error::plain("not an ELF file (no \\x7fELF magic)");
    if (data.size() < 52) return Error::plain("truncated ELF header");
    ElfInfo info;
    uint8_t cls = static_cast<uint8_t>(data[4]);
    uint8_t order = static_cast<uint8_t>(data[5]);
    if (cls != elfclass32 && cls != elfclass64) return Error::plain("unknown ELF class " + std::to_string(cls));
    if (order != elfdata2lsb && order != elfdata2msb)
        return Error::plain("unknown ELF byte order " + std::to_string(order));
    info.is_64 = cls == elfclass64;
    info.little_endian = order == elfdata2lsb;
    if (info.is_64 && data.size() < 64) return Error::plain("truncated ELF header");
    Reader r(data, info.little_endian);
    const Layout& l = info.is_64 ? layout64 : layout32;
    info.type = static_cast<uint16_t>(r.get(16, 2));
    info.machine = static_cast<uint16_t>(r.get(18, 2));
    auto segments = read_segments(r, l);
    if (!segments) return std::move(segments).error();
    for (const auto& s : *segments) {
        if (s.type == pt_interp) NUCLEUS_TRY(read_interpreter(r, s, info));
        if (s.type == pt_dynamic) NUCLEUS_TRY(read_dynamic(r, l, s, *segments, info));
    }
    return info;
}

// --- /etc/ld.so.cache --------------------------------------------------------

namespace {

constexpr std::string_view old_magic = "ld.so-1.7.0";
constexpr std::string_view new_magic = "glibc-ld.so.cache1.1";
constexpr uint64_t old_header = 16, old_entry = 12;  // struct cache_file, struct file_entry
constexpr uint64_t new_header = 48, new_entry = 24;  // struct cache_file_new, struct file_entry_new

Result<std::vector<LdCacheEntry>> read_table(const Reader& r, uint64_t table, uint64_t count, uint64_t entry_size,
                                             uint64_t strings, uint64_t end) {
    if (count > (uint64_t{1} << 24) || !r.fits(table, count * entry_size))
        return Error::plain("the entry table runs past the end of the cache");
    std::vector<LdCacheEntry> entries;
    entries.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) {
        uint64_t at = table + i * entry_size;
        LdCacheEntry e;
        e.flags = static_cast<int32_t>(r.get(at, 4));
        uint64_t key = r.get(at + 4, 4), value = r.get(at + 8, 4);
        if (entry_size == new_entry) e.hwcap = r.get(at + 16, 8);
        auto soname = r.string_at(strings + key, end);
        auto path = r.string_at(strings + value, end);
        if (!soname || !path) return Error::plain("entry " + std::to_string(i) + " names a string outside the cache");
        e.soname = std::move(*soname);
        e.path = std::move(*path);
        entries.push_back(std::move(e));
    }
    return entries;
}

}  // namespace

Result<std::vector<LdCacheEntry>> parse_ld_so_cache(std::string_view data) {
    // The cache is written by ldconfig for this machine: native byte order.
    Reader r(data, std::endian::native == std::endian::little);
    uint64_t start = 0;
    if (data.starts_with(old_magic)) {
        if (!r.fits(0, old_header)) return Error::plain("truncated ld.so.cache header");
        uint64_t count = r.get(12, 4);
        if (count > (uint64_t{1} << 24) || !r.fits(old_header, count * old_entry))
            return Error::plain("the old entry table runs past the end of the cache");
        start = (old_header + count * old_entry + 3) & ~uint64_t{3};  // ALIGN_CACHE: alignof(cache_file_new) is 4
        if (!r.fits(start, new_magic.size()) ||
            data.substr(static_cast<size_t>(start), new_magic.size()) != new_magic) {
            // Old format only: its strings follow its table.
            uint64_t table_end = old_header + count * old_entry;
            return read_table(r, old_header, count, old_entry, table_end, data.size());
        }
    }
    if (!r.fits(start, new_header) || data.substr(static_cast<size_t>(start), new_magic.size()) != new_magic)
        return Error::plain("not an ld.so.cache (no glibc-ld.so.cache1.1 header)");
    uint64_t count = r.get(start + 20, 4);
    // String offsets in the new format count from its header.
    return read_table(r, start + new_header, count, new_entry, start, data.size());
}

}  // namespace nucleus::isolation
