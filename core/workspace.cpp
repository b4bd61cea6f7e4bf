#include "core/workspace.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "io/unique_fd.hpp"

namespace nucleus::core {

namespace {

constexpr mode_t safe_mode_mask = 01777;  // setuid and setgid are never copied

using InodeKey = std::pair<dev_t, ino_t>;

bool special(mode_t mode) { return !S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode); }

bool same_mtime(const struct stat& a, const struct stat& b) {
    return a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

std::string join(const std::string& rel, const std::string& name) { return rel.empty() ? name : rel + "/" + name; }

Error at(const std::string& rel, const char* what, int err = errno) {
    return Error::from_errno(what + (" " + rel), err);
}

Result<io::unique_fd> open_dir_at(int dirfd, const std::string& name, const std::string& rel) {
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return at(rel, "opening");
    return io::unique_fd(fd);
}

// The names in a directory, without "." and "..".
Result<std::vector<std::string>> list_dir(int dirfd, const std::string& rel) {
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return at(rel.empty() ? "." : rel, "opening");
    DIR* dir = ::fdopendir(fd);
    if (!dir) {
        int err = errno;
        ::close(fd);
        return at(rel, "reading", err);
    }
    std::vector<std::string> names;
    errno = 0;
    while (auto* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..") names.push_back(std::move(name));
    }
    int err = errno;
    ::closedir(dir);
    if (err) return at(rel, "reading", err);
    return names;
}

Status set_times_at(int dirfd, const std::string& name, const struct stat& from, const std::string& rel) {
    struct timespec times[2] = {from.st_atim, from.st_mtim};
    if (::utimensat(dirfd, name.c_str(), times, AT_SYMLINK_NOFOLLOW) < 0) return at(rel, "setting the times of");
    return {};
}

Status copy_bytes(int in, int out, const std::string& rel) {
    // In the kernel where both sides allow it; read/write otherwise (across
    // filesystem types, e.g. tmpfs to ext4, copy_file_range says EXDEV).
    for (;;) {
        ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, size_t(1) << 30, 0);
        if (n == 0) return {};
        if (n > 0) continue;
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return at(rel, "copying");
        break;
    }
    // On the heap: these walks recurse once per directory level.
    std::vector<char> buffer(1 << 16);
    for (;;) {
        ssize_t n = ::read(in, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return at(rel, "reading");
        if (n == 0) return {};
        NUCLEUS_TRY(io::write_all(out, std::string_view(buffer.data(), static_cast<size_t>(n))).wrap("writing " + rel));
    }
}

// Whether two regular files of the same size hold the same bytes.
bool same_content(int a_dir, int b_dir, const std::string& name) {
    int fa = ::openat(a_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int fb = ::openat(b_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    io::unique_fd a(fa), b(fb);
    if (fa < 0 || fb < 0) return false;
    std::vector<char> buffers(2 << 15);  // on the heap: the walks recurse per level
    char* ba = buffers.data();
    char* bb = ba + (1 << 15);
    for (;;) {
        ssize_t na = ::read(fa, ba, 1 << 15);
        if (na < 0) return false;
        size_t got = 0;
        while (got < static_cast<size_t>(na)) {
            ssize_t nb = ::read(fb, bb + got, static_cast<size_t>(na) - got);
            if (nb <= 0) return false;
            got += static_cast<size_t>(nb);
        }
        if (na == 0) {
            char extra;
            return ::read(fb, &extra, 1) == 0;
        }
        if (std::memcmp(ba, bb, static_cast<size_t>(na)) != 0) return false;
    }
}

// What one copy (or sync) shares across the tree.
struct Copier {
    int root_to;  // the destination's root, for hard links
    // A source inode copied already -> its first copy (relative to
    // root_to) and that copy's inode: hard links stay hard links.
    std::map<InodeKey, std::pair<std::string, ino_t>> links;
};

Status copy_file_at(int src_dir, const std::string& name, const struct stat& st, int dst_dir, const std::string& rel,
                    const CopyOwner& owner) {
    int in_fd = ::openat(src_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in_fd < 0) return at(rel, "opening");
    io::unique_fd in(in_fd);
    int out_fd = ::openat(dst_dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out_fd < 0) return at(rel, "creating");
    io::unique_fd out(out_fd);
    NUCLEUS_TRY(copy_bytes(in.get(), out.get(), rel));
    if (owner.change && ::fchown(out.get(), owner.uid, owner.gid) < 0) return at(rel, "chown");
    if (::fchmod(out.get(), st.st_mode & safe_mode_mask) < 0) return at(rel, "chmod");
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::futimens(out.get(), times) < 0) return at(rel, "setting the times of");
    return {};
}

Status copy_contents(Copier& copier, int src_dir, int dst_dir, const std::string& rel, const CopyOwner& owner,
                     int depth, Manifest* manifest);

// Creates one entry at `name` in dst_dir, which does not exist there.
// Returns false for the kinds never copied.
Result<bool> copy_entry(Copier& copier, int src_dir, const std::string& name, const struct stat& st, int dst_dir,
                        const std::string& rel, const CopyOwner& owner, int depth, Manifest* manifest) {
    if (S_ISLNK(st.st_mode)) {
        std::string target(4096, '\0');
        ssize_t n = ::readlinkat(src_dir, name.c_str(), target.data(), target.size());
        if (n < 0) return at(rel, "readlink");
        target.resize(static_cast<size_t>(n));
        if (::symlinkat(target.c_str(), dst_dir, name.c_str()) < 0) return at(rel, "symlink");
        if (owner.change && ::fchownat(dst_dir, name.c_str(), owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) < 0)
            return at(rel, "lchown");
        NUCLEUS_TRY(set_times_at(dst_dir, name, st, rel));
    } else if (S_ISDIR(st.st_mode)) {
        // Writable by us while it is filled; its mode and times follow.
        if (::mkdirat(dst_dir, name.c_str(), 0700) < 0) return at(rel, "mkdir");
        NUCLEUS_TRY_ASSIGN(auto dst, open_dir_at(dst_dir, name, rel));
        if (owner.change && ::fchown(dst.get(), owner.uid, owner.gid) < 0) return at(rel, "chown");
        NUCLEUS_TRY_ASSIGN(auto src, open_dir_at(src_dir, name, rel));
        if (manifest) manifest->insert(rel);
        NUCLEUS_TRY(copy_contents(copier, src.get(), dst.get(), rel, owner, depth + 1, manifest));
        if (::fchmod(dst.get(), st.st_mode & safe_mode_mask) < 0) return at(rel, "chmod");
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        if (::futimens(dst.get(), times) < 0) return at(rel, "setting the times of");
        return true;
    } else if (S_ISREG(st.st_mode)) {
        InodeKey key{st.st_dev, st.st_ino};
        if (st.st_nlink > 1) {
            auto first = copier.links.find(key);
            // A first copy too deep for one relative path (ENAMETOOLONG) is
            // copied again rather than linked.
            if (first != copier.links.end() &&
                ::linkat(copier.root_to, first->second.first.c_str(), dst_dir, name.c_str(), 0) == 0) {
                if (manifest) manifest->insert(rel);
                return true;
            }
        }
        NUCLEUS_TRY(copy_file_at(src_dir, name, st, dst_dir, rel, owner));
        struct stat made {};
        if (st.st_nlink > 1 && ::fstatat(dst_dir, name.c_str(), &made, AT_SYMLINK_NOFOLLOW) == 0)
            copier.links.emplace(key, std::pair{rel, made.st_ino});
    } else {
        return false;  // devices, fifos, sockets: never copied
    }
    if (manifest) manifest->insert(rel);
    return true;
}

Status copy_contents(Copier& copier, int src_dir, int dst_dir, const std::string& rel, const CopyOwner& owner,
                     int depth, Manifest* manifest) {
    if (depth > max_copy_depth)
        return Error::plain(rel + ": directories nested deeper than " + std::to_string(max_copy_depth));
    NUCLEUS_TRY_ASSIGN(auto names, list_dir(src_dir, rel));
    for (const auto& name : names) {
        std::string path = join(rel, name);
        struct stat st {};
        if (::fstatat(src_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return at(path, "stat");
        auto copied = copy_entry(copier, src_dir, name, st, dst_dir, path, owner, depth, manifest);
        if (!copied) return std::move(copied).error();
    }
    return {};
}

// ---- sync back ----------------------------------------------------------

struct Sync {
    Copier copier;
    const Manifest& given;
    const CopyOwner& owner;
    SyncReport report;

    void conflict(const std::string& rel, const std::string& why) { report.conflicts.push_back(rel + ": " + why); }
};

// Removes the host entry `name` (at `rel`) and, inside a directory, what
// the sandbox was given; what it never saw stays. True when it is gone.
bool remove_seen(Sync& sync, int dir, const std::string& name, const std::string& rel, int depth) {
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT;
    if (!S_ISDIR(st.st_mode)) {
        if (::unlinkat(dir, name.c_str(), 0) < 0) return false;
        ++sync.report.removed;
        return true;
    }
    if (depth > max_copy_depth) return false;
    auto sub = open_dir_at(dir, name, rel);
    auto names = sub ? list_dir(sub->get(), rel) : Result<std::vector<std::string>>(sub.error());
    if (!names) return false;
    for (const auto& child : *names) {
        std::string path = join(rel, child);
        if (sync.given.count(path)) (void)remove_seen(sync, sub->get(), child, path, depth + 1);
    }
    if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) < 0) return false;  // ENOTEMPTY: something unseen inside
    ++sync.report.removed;
    return true;
}

Status sync_contents(Sync& sync, int copy_dir, int host_dir, const std::string& rel, int depth);

// Both sides are regular files: keep the host's when the content is the
// same (only mode and times follow). True when nothing more is to be done.
bool keep_same_file(Sync& sync, int copy_dir, int host_dir, const std::string& name, const std::string& rel,
                    const struct stat& ss, const struct stat& ts) {
    InodeKey key{ss.st_dev, ss.st_ino};
    if (auto first = sync.copier.links.find(key); first != sync.copier.links.end())
        return first->second.second == ts.st_ino;  // the same host inode, synced already
    if (ss.st_size != ts.st_size || !(same_mtime(ss, ts) || same_content(copy_dir, host_dir, name))) return false;
    if ((ts.st_mode & 07777) != (ss.st_mode & safe_mode_mask)) {
        int fd = ::openat(host_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        io::unique_fd file(fd);
        if (fd < 0 || ::fchmod(fd, ss.st_mode & safe_mode_mask) < 0)
            sync.conflict(rel, std::string("chmod: ") + std::strerror(errno));
    }
    if (!same_mtime(ss, ts)) {
        if (auto st = set_times_at(host_dir, name, ss, rel); !st) sync.conflict(rel, st.error().describe());
    }
    if (ss.st_nlink > 1) sync.copier.links.emplace(key, std::pair{rel, ts.st_ino});
    return true;
}

// One entry of the copy, synced to the host.
Status sync_entry(Sync& sync, int copy_dir, int host_dir, const std::string& name, const std::string& rel, int depth) {
    struct stat ss {
    }, ts{};
    if (::fstatat(copy_dir, name.c_str(), &ss, AT_SYMLINK_NOFOLLOW) < 0) return at(rel, "stat");
    bool exists = ::fstatat(host_dir, name.c_str(), &ts, AT_SYMLINK_NOFOLLOW) == 0;
    // The sandbox never saw the host's fifos, sockets and devices, and
    // never makes any on the host.
    if ((exists && special(ts.st_mode)) || special(ss.st_mode)) return {};
    if (exists && S_ISDIR(ss.st_mode) && S_ISDIR(ts.st_mode)) {
        NUCLEUS_TRY_ASSIGN(auto copy_sub, open_dir_at(copy_dir, name, rel));
        NUCLEUS_TRY_ASSIGN(auto host_sub, open_dir_at(host_dir, name, rel));
        NUCLEUS_TRY(sync_contents(sync, copy_sub.get(), host_sub.get(), rel, depth + 1));
        if ((ts.st_mode & 07777) != (ss.st_mode & safe_mode_mask) &&
            ::fchmod(host_sub.get(), ss.st_mode & safe_mode_mask) < 0)
            sync.conflict(rel, std::string("chmod: ") + std::strerror(errno));
        return {};
    }
    if (exists && S_ISLNK(ss.st_mode) && S_ISLNK(ts.st_mode)) {
        std::string a(4096, '\0'), b(4096, '\0');
        ssize_t na = ::readlinkat(copy_dir, name.c_str(), a.data(), a.size());
        ssize_t nb = ::readlinkat(host_dir, name.c_str(), b.data(), b.size());
        if (na >= 0 && na == nb && std::memcmp(a.data(), b.data(), static_cast<size_t>(na)) == 0) return {};
    }
    if (exists && S_ISREG(ss.st_mode) && S_ISREG(ts.st_mode) &&
        keep_same_file(sync, copy_dir, host_dir, name, rel, ss, ts))
        return {};
    // Changed, new, or another kind: replace it, unless the host's is not
    // what the sandbox was given.
    CopyOwner owner = sync.owner;
    if (exists) {
        if (!sync.given.count(rel)) {
            sync.conflict(rel, "created on the host during the run; the sandbox's version is not synced");
            return {};
        }
        if (S_ISDIR(ts.st_mode)) {
            if (!remove_seen(sync, host_dir, name, rel, depth)) {
                sync.conflict(rel,
                              "the sandbox replaced this directory, but on the host it holds entries the sandbox "
                              "never saw (kept, with the directory)");
                return {};
            }
        } else {
            if (sync.owner.change) owner = CopyOwner{ts.st_uid, ts.st_gid, true};  // a replaced file keeps its owner
            if (::unlinkat(host_dir, name.c_str(), 0) < 0) {
                sync.conflict(rel, std::string("removing the old entry: ") + std::strerror(errno));
                return {};
            }
        }
    }
    auto copied = copy_entry(sync.copier, copy_dir, name, ss, host_dir, rel, owner, depth, nullptr);
    if (!copied) sync.conflict(rel, copied.error().describe());
    else if (*copied) ++sync.report.written;
    return {};
}

Status sync_contents(Sync& sync, int copy_dir, int host_dir, const std::string& rel, int depth) {
    if (depth > max_copy_depth)
        return Error::plain(rel + ": directories nested deeper than " + std::to_string(max_copy_depth));
    NUCLEUS_TRY_ASSIGN(auto names, list_dir(copy_dir, rel));
    std::set<std::string> present(names.begin(), names.end());
    for (const auto& name : names) NUCLEUS_TRY(sync_entry(sync, copy_dir, host_dir, name, join(rel, name), depth));
    // What the sandbox deleted: only what it was given, never what appeared
    // on the host meanwhile or was never copied in.
    NUCLEUS_TRY_ASSIGN(auto host_names, list_dir(host_dir, rel));
    for (const auto& name : host_names) {
        std::string path = join(rel, name);
        if (present.count(name) || !sync.given.count(path)) continue;
        (void)remove_seen(sync, host_dir, name, path, depth);  // a directory with unseen entries stays
    }
    return {};
}

}  // namespace

Result<Manifest> copy_tree(int from_dir, int to_dir, const CopyOwner& owner) {
    Copier copier{.root_to = to_dir, .links = {}};
    Manifest manifest;
    NUCLEUS_TRY(copy_contents(copier, from_dir, to_dir, "", owner, 0, &manifest));
    struct stat st {};
    if (::fstat(from_dir, &st) < 0) return Error::from_errno("stat of the directory copied");
    if (owner.change && ::fchown(to_dir, owner.uid, owner.gid) < 0) return Error::from_errno("chown of the copy");
    if (::fchmod(to_dir, st.st_mode & safe_mode_mask) < 0) return Error::from_errno("chmod of the copy");
    return manifest;
}

Result<SyncReport> sync_tree_back(int copy_dir, int host_dir, const Manifest& given, const CopyOwner& owner) {
    Sync sync{.copier = {.root_to = host_dir, .links = {}}, .given = given, .owner = owner, .report = {}};
    NUCLEUS_TRY(sync_contents(sync, copy_dir, host_dir, "", 0));
    return std::move(sync.report);
}

}  // namespace nucleus::core
