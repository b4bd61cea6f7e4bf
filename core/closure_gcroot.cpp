#include "core/closure_gcroot.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <vector>

#include "core/state.hpp"

namespace nucleus::core {

namespace {

bool plain_id(const std::string& id) {
    return !id.empty() && id.size() <= 64 && id.find('/') == std::string::npos && id != "." && id != "..";
}

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

std::vector<std::string> all_paths(const ClosureManifest& manifest) {
    std::vector<std::string> paths;
    for (const auto& p : manifest.paths) paths.push_back(p.path);
    return paths;
}

}  // namespace

std::string closure_gcroots_dir() {
    const char* state = std::getenv("NIX_STATE_DIR");
    std::string gcroots = std::string(state && *state ? state : "/nix/var/nix") + "/gcroots";
    struct stat st {};
    if (::stat(gcroots.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) return "";
    return gcroots + "/nucleus";
}

// The store path holding the manifest when it lives in the store ("" when not).
std::string manifest_store_path(const ClosureManifest& manifest) {
    char real[PATH_MAX];
    if (manifest.file.empty() || !::realpath(manifest.file.c_str(), real)) return "";
    std::string path = real;
    if (!path.starts_with(manifest.store_dir + "/")) return "";
    return path.substr(0, path.find('/', manifest.store_dir.size() + 1));
}

Result<std::string> add_closure_gcroot(const std::string& sandbox_id, const ClosureManifest& manifest) {
    std::string base = closure_gcroots_dir();
    if (base.empty()) return std::string();
    if (!plain_id(sandbox_id)) return Error::plain("bad sandbox id for a gc root: " + sandbox_id);
    if (::mkdir(base.c_str(), 0755) < 0 && errno != EEXIST) return Error::from_errno("mkdir " + base);
    std::string root = base + "/" + sandbox_id;
    // One symlink to a manifest in the store: Nix found every path it lists
    // among its references when it built it, so rooting it roots them all.
    // One inode per sandbox, not one per path (allocating inodes is what
    // costs on a busy ext4).
    if (std::string store_path = manifest_store_path(manifest); !store_path.empty()) {
        if (::symlink(store_path.c_str(), root.c_str()) < 0) return Error::from_errno("symlink " + root);
        return root;
    }
    // A manifest outside the store: a directory with a link to each root
    // (every path when it names none).
    if (::mkdir(root.c_str(), 0755) < 0) return Error::from_errno("mkdir " + root);
    Status made;
    for (const auto& target : manifest.roots.empty() ? all_paths(manifest) : manifest.roots) {
        std::string at = root + "/" + base_name(target);
        if (::symlink(target.c_str(), at.c_str()) < 0 && errno != EEXIST) made = Error::from_errno("symlink " + at);
        if (!made) break;
    }
    if (!made) {
        (void)remove_tree(root);
        return std::move(made).error().wrap("keeping a gc root for the closure");
    }
    return root;
}

Status remove_closure_gcroot(const std::string& sandbox_id) {
    std::string base = closure_gcroots_dir();
    if (base.empty() || !plain_id(sandbox_id)) return {};
    std::string root = base + "/" + sandbox_id;
    struct stat st {};
    if (::lstat(root.c_str(), &st) < 0) return {};
    if (S_ISLNK(st.st_mode)) {
        if (::unlink(root.c_str()) < 0 && errno != ENOENT) return Error::from_errno("unlink " + root);
        return {};
    }
    return remove_tree(root);
}

}  // namespace nucleus::core
