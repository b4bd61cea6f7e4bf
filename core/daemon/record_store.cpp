#include "core/daemon/record_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/daemon/sandbox_record.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::core::daemon {

using nlohmann::json;

LastRecord last_record(std::string_view text) {
    std::vector<std::string_view> lines;
    std::string_view rest = text;
    for (auto nl = rest.find('\n'); nl != std::string_view::npos; nl = rest.find('\n')) {
        lines.push_back(rest.substr(0, nl));
        rest.remove_prefix(nl + 1);
    }
    const bool torn_tail = !rest.empty();
    LastRecord last;
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        json record = json::parse(*it, nullptr, false);
        if (!record.is_object()) continue;
        if (!torn_tail && it == lines.rbegin()) last.appendable_lines = static_cast<int>(lines.size());
        last.record = std::move(record);
        return last;
    }
    return last;
}

bool can_append(const RecordFile& file, size_t line_bytes) {
    return file.lines > 0 && file.lines < max_record_lines && file.bytes + line_bytes <= max_record_file_bytes;
}

std::string RecordStore::path(std::string_view id) const { return dir_ + "/" + std::string(id) + ".json"; }

namespace {

// Through a temporary file and rename(2): a reader (or a daemon restarted
// after a crash) sees the old or the new record, never half of one.
Status write_atomically(const std::string& path, std::string_view content) {
    std::string tmp = path + ".tmp";
    auto fd = io::open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (!fd) return std::move(fd).error();
    if (auto st = io::write_all(fd->get(), content); !st) {
        ::unlink(tmp.c_str());
        return st;
    }
    fd->reset();
    if (::rename(tmp.c_str(), path.c_str()) < 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return Error::from_errno("rename " + tmp, e);
    }
    return {};
}

Status append_line(const std::string& path, std::string_view line) {
    auto fd = io::open_fd(path, O_WRONLY | O_APPEND | O_NOFOLLOW);
    if (!fd) return std::move(fd).error();
    return io::write_all(fd->get(), line);
}

bool is_record_name(std::string_view name) {
    return name.size() == 37 && name.ends_with(".json") && looks_like_id_prefix(name.substr(0, 32));
}

}  // namespace

Status RecordStore::write(std::string_view id, std::string_view line, RecordFile& file) const {
    std::string target = path(id);
    if (can_append(file, line.size()) && append_line(target, line)) {
        ++file.lines;
        file.bytes += line.size();
        return {};
    }
    file = {};
    NUCLEUS_TRY(write_atomically(target, line));
    file = {1, line.size()};
    return {};
}

void RecordStore::remove(std::string_view id) const { ::unlink(path(id).c_str()); }

std::vector<RecordStore::Stored> RecordStore::load() const {
    std::vector<Stored> out;
    DIR* d = ::opendir(dir_.c_str());
    if (!d) return out;
    std::vector<std::string> names;
    while (auto* ent = ::readdir(d)) {
        std::string_view name = ent->d_name;
        if (is_record_name(name)) names.emplace_back(name);
        else if (name.ends_with(".tmp")) ::unlinkat(::dirfd(d), ent->d_name, 0);
    }
    ::closedir(d);
    for (const auto& name : names) {
        Stored stored{.id = name.substr(0, 32), .record = json(json::value_t::discarded), .file = {}};
        if (auto text = io::read_file(dir_ + "/" + name, max_record_read_bytes)) {
            auto last = last_record(*text);
            stored.record = std::move(last.record);
            stored.file = {last.appendable_lines, text->size()};
        }
        out.push_back(std::move(stored));
    }
    return out;
}

}  // namespace nucleus::core::daemon
