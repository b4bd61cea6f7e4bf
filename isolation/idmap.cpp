#include "isolation/idmap.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <optional>
#include <sstream>

namespace nucleus::isolation {

std::string format_map(const std::vector<IdMapping>& map) {
    std::string out;
    for (const auto& m : map)
        out += std::to_string(m.inside) + " " + std::to_string(m.outside) + " " + std::to_string(m.count) + "\n";
    return out;
}

int64_t map_to_host(const std::vector<IdMapping>& map, uint32_t inside) {
    for (const auto& m : map)
        if (inside >= m.inside && inside - m.inside < m.count) return int64_t(m.outside) + (inside - m.inside);
    return -1;
}

namespace {

// Locks <lock_dir>/slot-N: the lock's fd, nullopt if another holds it.
Result<std::optional<io::unique_fd>> try_lock_slot(const std::string& lock_dir, uint32_t slot) {
    std::string path = lock_dir + "/slot-" + std::to_string(slot);
    auto fd = io::open_fd(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
    if (!fd) return std::move(fd).error();
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) == 0) return std::optional<io::unique_fd>(std::move(*fd));
    if (errno != EWOULDBLOCK) return Error::from_errno("flock " + path);
    return std::optional<io::unique_fd>();
}

Status make_lock_dir(const std::string& lock_dir) {
    if (::mkdir(lock_dir.c_str(), 0700) < 0 && errno != EEXIST) return Error::from_errno("mkdir " + lock_dir);
    return {};
}

}  // namespace

Result<IdRangeLease> lease_id_range(const std::string& lock_dir) {
    if (auto st = make_lock_dir(lock_dir); !st) return std::move(st).error().wrap("leasing a host id range");
    // Start probing at a slot spread by pid so concurrent runs rarely collide.
    uint32_t start = (static_cast<uint32_t>(::getpid()) * 2654435761u) % id_range_slots;
    for (uint32_t i = 0; i < id_range_slots; ++i) {
        uint32_t slot = (start + i) % id_range_slots;
        auto lock = try_lock_slot(lock_dir, slot);
        if (!lock) return std::move(lock).error().wrap("leasing a host id range");
        if (*lock) {
            IdRangeLease lease;
            lease.lock_ = std::move(**lock);
            lease.slot_ = slot;
            lease.base_ = id_range_base + slot * id_range_size;
            return lease;
        }
    }
    return Error::plain("leasing a host id range: all " + std::to_string(id_range_slots) + " ranges are in use");
}

Result<IdRangeLease> lease_id_slot(const std::string& lock_dir, uint32_t slot) {
    const std::string what = "leasing host id range slot " + std::to_string(slot);
    if (slot >= id_range_slots) return Error::plain(what + ": there are only " + std::to_string(id_range_slots));
    if (auto st = make_lock_dir(lock_dir); !st) return std::move(st).error().wrap(what);
    auto lock = try_lock_slot(lock_dir, slot);
    if (!lock) return std::move(lock).error().wrap(what);
    if (!*lock) return Error::plain(what + ": another sandbox holds it");
    IdRangeLease lease;
    lease.lock_ = std::move(**lock);
    lease.slot_ = slot;
    lease.base_ = id_range_base + slot * id_range_size;
    return lease;
}

Result<SubordinateRange> find_subordinate_range(const std::string& file, const std::string& user, uid_t id) {
    auto content = io::read_file(file);
    if (!content) return std::move(content).error();
    std::istringstream lines(*content);
    std::string line;
    const std::string id_text = std::to_string(id);
    while (std::getline(lines, line)) {
        auto first = line.find(':');
        auto second = line.find(':', first == std::string::npos ? first : first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        std::string name = line.substr(0, first);
        if (name != user && name != id_text) continue;
        SubordinateRange range;
        auto start_text = line.substr(first + 1, second - first - 1);
        auto count_text = line.substr(second + 1);
        auto r1 = std::from_chars(start_text.data(), start_text.data() + start_text.size(), range.start);
        auto r2 = std::from_chars(count_text.data(), count_text.data() + count_text.size(), range.count);
        if (r1.ec == std::errc{} && r2.ec == std::errc{} && range.count > 0) return range;
    }
    return Error::plain("no entry for " + user + " in " + file);
}

}  // namespace nucleus::isolation
