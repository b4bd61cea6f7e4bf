#include "isolation/mountinfo.hpp"

#include <charconv>

namespace nucleus::isolation {

namespace {

// The next space-separated field of `line` from `pos` (the kernel separates
// fields by one space; escaped paths contain none).
bool next_field(std::string_view line, size_t& pos, std::string_view& field) {
    while (pos < line.size() && line[pos] == ' ') ++pos;
    if (pos >= line.size()) return false;
    size_t end = line.find(' ', pos);
    if (end == std::string_view::npos) end = line.size();
    field = line.substr(pos, end - pos);
    pos = end;
    return true;
}

bool parse_id(std::string_view field, uint64_t& value) {
    auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
    return ec == std::errc() && end == field.data() + field.size();
}

bool parse_line(std::string_view line, MountInfoEntry& entry) {
    size_t pos = 0;
    std::string_view id, parent, device, root, point, options;
    if (!next_field(line, pos, id) || !next_field(line, pos, parent) || !next_field(line, pos, device) ||
        !next_field(line, pos, root) || !next_field(line, pos, point) || !next_field(line, pos, options))
        return false;
    if (!parse_id(id, entry.mount_id) || !parse_id(parent, entry.parent_id)) return false;
    // Zero or more optional fields, then "-" alone.
    std::string_view field;
    bool separated = false;
    while (next_field(line, pos, field)) {
        if (field == "-") {
            separated = true;
            break;
        }
        entry.optional_fields.emplace_back(field);
    }
    std::string_view fstype, source, super_options;
    if (!separated || !next_field(line, pos, fstype) || !next_field(line, pos, source)) return false;
    next_field(line, pos, super_options);  // absent on some old kernels' pseudo filesystems
    entry.device = device;
    entry.root = decode_mountinfo_field(root);
    entry.mount_point = decode_mountinfo_field(point);
    entry.options = options;
    entry.fstype = fstype;
    entry.source = decode_mountinfo_field(source);
    entry.super_options = super_options;
    return true;
}

bool is_octal(char c) { return c >= '0' && c <= '7'; }

}  // namespace

bool MountInfoEntry::has_option(std::string_view option) const {
    std::string_view rest = options;
    while (!rest.empty()) {
        size_t comma = rest.find(',');
        if (rest.substr(0, comma) == option) return true;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return false;
}

std::vector<MountInfoEntry> parse_mountinfo(std::string_view text) {
    std::vector<MountInfoEntry> entries;
    while (!text.empty()) {
        size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
        MountInfoEntry entry;
        if (parse_line(line, entry)) entries.push_back(std::move(entry));
    }
    return entries;
}

std::string decode_mountinfo_field(std::string_view field) {
    std::string out;
    out.reserve(field.size());
    for (size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) && is_octal(field[i + 2]) &&
            is_octal(field[i + 3])) {
            int value = (field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0');
            if (value <= 0xff) {
                out.push_back(static_cast<char>(value));
                i += 3;
                continue;
            }
        }
        out.push_back(field[i]);
    }
    return out;
}

}  // namespace nucleus::isolation
