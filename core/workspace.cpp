#include "core/workspace.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <vector>

namespace nucleus::core {

namespace fs = std::filesystem;

namespace {

constexpr auto safe_perms_mask = fs::perms::owner_all | fs::perms::group_all | fs::perms::others_all | fs::perms::sticky_bit;

Error error_from(const std::error_code& ec, const std::string& what) { return Error{ec.value(), what}; }

Status set_owner(const fs::path& path, const CopyOwner& owner) {
    if (owner.change && ::lchown(path.c_str(), owner.uid, owner.gid) < 0)
        return Error::from_errno("lchown " + path.string());
    return {};
}

// Paths are joined with lexically_relative, never fs::relative: the latter
// resolves symlinks, and a link in the sandbox's copy must never steer where
// we write. Copies one entry (not recursing). Returns false for skipped kinds.
Result<bool> copy_entry(const fs::path& source, const fs::path& target, const CopyOwner& owner) {
    std::error_code ec;
    auto status = fs::symlink_status(source, ec);
    if (ec) return error_from(ec, "stat " + source.string());
    if (fs::is_symlink(status)) {
        auto link = fs::read_symlink(source, ec);
        if (ec) return error_from(ec, "readlink " + source.string());
        fs::create_symlink(link, target, ec);
        if (ec) return error_from(ec, "symlink " + target.string());
    } else if (fs::is_directory(status)) {
        fs::create_directory(target, ec);
        if (ec) return error_from(ec, "mkdir " + target.string());
        fs::permissions(target, status.permissions() & safe_perms_mask, ec);
    } else if (fs::is_regular_file(status)) {
        fs::copy_file(source, target, fs::copy_options::overwrite_existing, ec);
        if (ec) return error_from(ec, "copy " + source.string());
        fs::permissions(target, status.permissions() & safe_perms_mask, ec);
    } else {
        return false;  // devices, fifos, sockets: never copied
    }
    NUCLEUS_TRY(set_owner(target, owner));
    return true;
}

bool same_file_content(const fs::path& a, const fs::path& b) {
    struct stat sa {}, sb {};
    if (::lstat(a.c_str(), &sa) < 0 || ::lstat(b.c_str(), &sb) < 0) return false;
    return S_ISREG(sa.st_mode) && S_ISREG(sb.st_mode) && sa.st_size == sb.st_size &&
           sa.st_mtim.tv_sec == sb.st_mtim.tv_sec && sa.st_mtim.tv_nsec == sb.st_mtim.tv_nsec &&
           (sa.st_mode & 07777) == (sb.st_mode & 07777);
}

}  // namespace

Status copy_tree(const std::string& from, const std::string& to, const CopyOwner& owner) {
    std::error_code ec;
    fs::recursive_directory_iterator it(from, fs::directory_options::none, ec), end;
    if (ec) return error_from(ec, "reading " + from);
    for (; it != end; it.increment(ec)) {
        if (ec) return error_from(ec, "reading " + from);
        auto relative = it->path().lexically_relative(from);
        auto copied = copy_entry(it->path(), fs::path(to) / relative, owner);
        if (!copied) return std::move(copied).error().wrap("copying " + from);
        if (it->is_symlink()) it.disable_recursion_pending();
    }
    return set_owner(to, owner);
}

Status sync_tree_back(const std::string& from, const std::string& to, const CopyOwner& owner) {
    std::error_code ec;
    std::set<fs::path> present;
    fs::recursive_directory_iterator it(from, fs::directory_options::none, ec), end;
    if (ec) return error_from(ec, "reading " + from);
    for (; it != end; it.increment(ec)) {
        if (ec) return error_from(ec, "reading " + from);
        auto relative = it->path().lexically_relative(from);
        fs::path target = fs::path(to) / relative;
        present.insert(relative);
        auto source_status = fs::symlink_status(it->path(), ec);
        auto target_status = fs::symlink_status(target, ec);
        bool same_kind = fs::exists(target_status) && source_status.type() == target_status.type();
        if (fs::is_directory(source_status) && same_kind) continue;  // a real dir already: descend
        if (same_kind && same_file_content(it->path(), target)) continue;
        if (fs::exists(target_status) || fs::is_symlink(target_status)) fs::remove_all(target, ec);
        auto copied = copy_entry(it->path(), target, owner);
        if (!copied) return std::move(copied).error().wrap("syncing the workspace back");
        if (fs::is_symlink(source_status)) it.disable_recursion_pending();
    }
    // Remove what the sandbox deleted (deepest first).
    std::vector<fs::path> stale;
    for (fs::recursive_directory_iterator walk(to, fs::directory_options::none, ec); walk != end; walk.increment(ec)) {
        if (ec) break;
        auto relative = walk->path().lexically_relative(to);
        if (!present.count(relative)) {
            stale.push_back(walk->path());
            walk.disable_recursion_pending();
        }
    }
    for (const auto& path : stale) fs::remove_all(path, ec);
    return {};
}

}  // namespace nucleus::core
