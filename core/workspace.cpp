#include "core/workspace.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "io/unique_fd.hpp"

namespace nucleus::core {

namespace fs = std::filesystem;

namespace {

constexpr mode_t safe_mode_mask = 01777;  // setuid and setgid are never copied

Error error_from(const std::error_code& ec, const std::string& what) { return Error{ec.value(), what}; }

using InodeKey = std::pair<dev_t, ino_t>;

// The manifest lives beside the copy (never inside it, where the sandbox
// could rewrite it): the relative paths copied in, NUL-separated.
std::string manifest_of(const std::string& copy) {
    std::string path = copy;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path + ".manifest";
}

bool special(mode_t mode) { return !S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode); }

bool same_mtime(const struct stat& a, const struct stat& b) {
    return a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

Status set_times(const fs::path& path, const struct stat& from) {
    struct timespec times[2] = {from.st_atim, from.st_mtim};
    if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) < 0)
        return Error::from_errno("setting the times of " + path.string());
    return {};
}

// Writes a new regular file at `target` (which must not exist; never through
// a link) with the content, mode and times of `source`, owned by `owner`
// when it is to be changed.
Status copy_file(const fs::path& source, const struct stat& st, const fs::path& target, const CopyOwner& owner) {
    auto in = io::open_fd(source.string(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (!in) return std::move(in).error();
    auto out = io::open_fd(target.string(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (!out) return std::move(out).error();
    char buffer[1 << 16];
    for (;;) {
        ssize_t n = ::read(in->get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno("read " + source.string());
        if (n == 0) break;
        NUCLEUS_TRY(io::write_all(out->get(), std::string_view(buffer, static_cast<size_t>(n))).wrap("write " + target.string()));
    }
    if (owner.change && ::fchown(out->get(), owner.uid, owner.gid) < 0)
        return Error::from_errno("chown " + target.string());
    if (::fchmod(out->get(), st.st_mode & safe_mode_mask) < 0) return Error::from_errno("chmod " + target.string());
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::futimens(out->get(), times) < 0) return Error::from_errno("setting the times of " + target.string());
    return {};
}

// Whether two regular files of the same size hold the same bytes.
bool same_content(const fs::path& a, const fs::path& b) {
    auto fa = io::open_fd(a.string(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    auto fb = io::open_fd(b.string(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (!fa || !fb) return false;
    char ba[1 << 15], bb[1 << 15];
    for (;;) {
        ssize_t na = ::read(fa->get(), ba, sizeof ba);
        if (na < 0) return false;
        size_t got = 0;
        while (got < static_cast<size_t>(na)) {
            ssize_t nb = ::read(fb->get(), bb + got, static_cast<size_t>(na) - got);
            if (nb <= 0) return false;
            got += static_cast<size_t>(nb);
        }
        if (na == 0) {
            char extra;
            return ::read(fb->get(), &extra, 1) == 0;
        }
        if (std::memcmp(ba, bb, static_cast<size_t>(na)) != 0) return false;
    }
}

// Creates one entry (not recursing) at `target`, which does not exist.
// `links` maps a source inode already copied to its copy, so that hard
// links stay hard links. Returns false for the kinds never copied.
Result<bool> copy_entry(const fs::path& source, const struct stat& st, const fs::path& target, const CopyOwner& owner,
                        std::map<InodeKey, fs::path>& links) {
    std::error_code ec;
    if (S_ISLNK(st.st_mode)) {
        auto link = fs::read_symlink(source, ec);
        if (ec) return error_from(ec, "readlink " + source.string());
        fs::create_symlink(link, target, ec);
        if (ec) return error_from(ec, "symlink " + target.string());
        if (owner.change && ::lchown(target.c_str(), owner.uid, owner.gid) < 0)
            return Error::from_errno("lchown " + target.string());
        NUCLEUS_TRY(set_times(target, st));
    } else if (S_ISDIR(st.st_mode)) {
        // Writable by us while it is filled; its mode and times are set once
        // its contents are in (see finish_dirs).
        if (::mkdir(target.c_str(), 0700) < 0) return Error::from_errno("mkdir " + target.string());
        if (owner.change && ::lchown(target.c_str(), owner.uid, owner.gid) < 0)
            return Error::from_errno("lchown " + target.string());
    } else if (S_ISREG(st.st_mode)) {
        InodeKey key{st.st_dev, st.st_ino};
        if (st.st_nlink > 1) {
            if (auto first = links.find(key); first != links.end()) {
                if (::link(first->second.c_str(), target.c_str()) == 0) return true;
            }
        }
        NUCLEUS_TRY(copy_file(source, st, target, owner));
        if (st.st_nlink > 1) links.emplace(key, target);
    } else {
        return false;  // devices, fifos, sockets: never copied
    }
    return true;
}

// A directory's final mode (and times, when it was copied) is set after its
// contents: filling it changes its times, and a read-only mode would stop it
// being filled.
struct PendingDir {
    fs::path path;
    struct stat from;
    bool times;
};

Status finish_dirs(const std::vector<PendingDir>& dirs) {
    for (auto d = dirs.rbegin(); d != dirs.rend(); ++d) {  // deepest first
        if (::chmod(d->path.c_str(), d->from.st_mode & safe_mode_mask) < 0)
            return Error::from_errno("chmod " + d->path.string());
        if (d->times) NUCLEUS_TRY(set_times(d->path, d->from));
    }
    return {};
}

Status write_manifest(const std::string& copy, const std::vector<fs::path>& entries) {
    std::string text;
    for (const auto& e : entries) {
        text += e.string();
        text.push_back('\0');
    }
    auto fd = io::open_fd(manifest_of(copy), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (!fd) return std::move(fd).error();
    return io::write_all(fd->get(), text);
}

std::optional<std::set<fs::path>> read_manifest(const std::string& copy) {
    auto text = io::read_file(manifest_of(copy), size_t(1) << 30);
    if (!text) return std::nullopt;
    std::set<fs::path> entries;
    size_t start = 0;
    for (size_t end; (end = text->find('\0', start)) != std::string::npos; start = end + 1)
        entries.insert(text->substr(start, end - start));
    return entries;
}

}  // namespace

Status copy_tree(const std::string& from, const std::string& to, const CopyOwner& owner) {
    std::error_code ec;
    std::map<InodeKey, fs::path> links;
    std::vector<PendingDir> dirs;
    std::vector<fs::path> copied;
    fs::recursive_directory_iterator it(from, fs::directory_options::none, ec), end;
    if (ec) return error_from(ec, "reading " + from);
    for (; it != end; it.increment(ec)) {
        if (ec) return error_from(ec, "reading " + from);
        auto relative = it->path().lexically_relative(from);
        fs::path target = fs::path(to) / relative;
        struct stat st {};
        if (::lstat(it->path().c_str(), &st) < 0) return Error::from_errno("stat " + it->path().string()).wrap("copying " + from);
        auto done = copy_entry(it->path(), st, target, owner, links);
        if (!done) return std::move(done).error().wrap("copying " + from);
        if (*done) copied.push_back(relative);
        if (S_ISDIR(st.st_mode)) dirs.push_back({target, st, true});
        else if (it->is_symlink()) it.disable_recursion_pending();
    }
    NUCLEUS_TRY(finish_dirs(dirs).wrap("copying " + from));
    NUCLEUS_TRY(write_manifest(to, copied).wrap("recording what was copied from " + from));
    if (owner.change && ::lchown(to.c_str(), owner.uid, owner.gid) < 0) return Error::from_errno("lchown " + to);
    return {};
}

Status sync_tree_back(const std::string& from, const std::string& to, const CopyOwner& owner) {
    std::error_code ec;
    std::set<fs::path> present;
    // A copy inode already synced -> the host path it went to: hard links in
    // the copy stay hard links on the host.
    std::map<InodeKey, fs::path> links;
    std::vector<PendingDir> dirs;
    fs::recursive_directory_iterator it(from, fs::directory_options::none, ec), end;
    if (ec) return error_from(ec, "reading " + from);
    for (; it != end; it.increment(ec)) {
        if (ec) return error_from(ec, "reading " + from);
        auto relative = it->path().lexically_relative(from);
        fs::path target = fs::path(to) / relative;
        present.insert(relative);
        struct stat ss {}, ts {};
        if (::lstat(it->path().c_str(), &ss) < 0) return Error::from_errno("stat " + it->path().string());
        bool target_exists = ::lstat(target.c_str(), &ts) == 0;
        if (S_ISLNK(ss.st_mode)) it.disable_recursion_pending();
        // The sandbox never saw the host's fifos, sockets and devices, and
        // never makes any on the host.
        if ((target_exists && special(ts.st_mode)) || special(ss.st_mode)) {
            if (S_ISDIR(ss.st_mode)) it.disable_recursion_pending();
            continue;
        }
        if (S_ISDIR(ss.st_mode) && target_exists && S_ISDIR(ts.st_mode)) {
            if ((ts.st_mode & 07777) != (ss.st_mode & safe_mode_mask)) dirs.push_back({target, ss, false});
            continue;  // a real directory already: descend
        }
        if (S_ISLNK(ss.st_mode) && target_exists && S_ISLNK(ts.st_mode) &&
            fs::read_symlink(it->path(), ec) == fs::read_symlink(target, ec) && !ec)
            continue;
        if (S_ISREG(ss.st_mode) && target_exists && S_ISREG(ts.st_mode)) {
            InodeKey key{ss.st_dev, ss.st_ino};
            if (auto first = links.find(key); first != links.end()) {
                struct stat fs_ {};
                if (::lstat(first->second.c_str(), &fs_) == 0 && fs_.st_ino == ts.st_ino && fs_.st_dev == ts.st_dev)
                    continue;  // the same host inode, synced already
            } else if (ss.st_size == ts.st_size &&
                       (same_mtime(ss, ts) || same_content(it->path(), target))) {
                // Unchanged content: the host file stays (its inode, links
                // and owner); only its mode and times follow the copy.
                if ((ts.st_mode & 07777) != (ss.st_mode & safe_mode_mask) &&
                    ::chmod(target.c_str(), ss.st_mode & safe_mode_mask) < 0)
                    return Error::from_errno("chmod " + target.string());
                if (!same_mtime(ss, ts)) NUCLEUS_TRY(set_times(target, ss));
                if (ss.st_nlink > 1) links.emplace(key, target);
                continue;
            }
        }
        // Changed, new, or another kind: replace it. A replaced file keeps its
        // host owner; new entries get `owner`.
        CopyOwner entry_owner = owner;
        if (target_exists) {
            if (owner.change && !S_ISDIR(ts.st_mode)) entry_owner = CopyOwner{ts.st_uid, ts.st_gid, true};
            fs::remove_all(target, ec);
            if (ec) return error_from(ec, "removing " + target.string()).wrap("syncing the workspace back");
        }
        auto copied = copy_entry(it->path(), ss, target, entry_owner, links);
        if (!copied) return std::move(copied).error().wrap("syncing the workspace back");
        if (S_ISDIR(ss.st_mode)) dirs.push_back({target, ss, false});
    }
    NUCLEUS_TRY(finish_dirs(dirs).wrap("syncing the workspace back"));
    // Remove what the sandbox deleted: only what it was given (the manifest),
    // never what appeared on the host meanwhile or was never copied in.
    // Deepest first, and a directory only once it is empty.
    auto manifest = read_manifest(from);
    std::vector<std::pair<fs::path, bool>> stale;  // path, is a directory
    for (fs::recursive_directory_iterator walk(to, fs::directory_options::none, ec); walk != end; walk.increment(ec)) {
        if (ec) break;
        auto relative = walk->path().lexically_relative(to);
        if (present.count(relative)) continue;
        struct stat st {};
        if (::lstat(walk->path().c_str(), &st) < 0) continue;
        bool seen = manifest ? manifest->count(relative) > 0 : !special(st.st_mode);
        if (!seen) {
            walk.disable_recursion_pending();
            continue;
        }
        stale.emplace_back(walk->path(), S_ISDIR(st.st_mode));
    }
    for (auto s = stale.rbegin(); s != stale.rend(); ++s) {
        if (s->second) ::rmdir(s->first.c_str());  // kept when something unseen is inside
        else ::unlink(s->first.c_str());
    }
    return {};
}

}  // namespace nucleus::core
