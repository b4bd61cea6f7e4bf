#include "core/closure_gcroot.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "core/state.hpp"

namespace nucleus::core {

namespace {

bool plain_id(const std::string& id) {
    return !id.empty() && id.size() <= 64 && id.find('/') == std::string::npos && id != "." && id != "..";
}

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

}  // namespace

std::string closure_gcroots_dir() {
    const char* state = std::getenv("NIX_STATE_DIR");
    std::string gcroots = std::string(state && *state ? state : "/nix/var/nix") + "/gcroots";
    struct stat st {};
    if (::stat(gcroots.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) return "";
    return gcroots + "/nucleus";
}

Result<std::string> add_closure_gcroot(const std::string& sandbox_id, const ClosureManifest& manifest) {
    std::string base = closure_gcroots_dir();
    if (base.empty()) return std::string();
    if (!plain_id(sandbox_id)) return Error::plain("bad sandbox id for a gc root: " + sandbox_id);
    if (::mkdir(base.c_str(), 0755) < 0 && errno != EEXIST) return Error::from_errno("mkdir " + base);
    std::string dir = base + "/" + sandbox_id;
    if (::mkdir(dir.c_str(), 0755) < 0) return Error::from_errno("mkdir " + dir);
    auto link = [&](const std::string& target) -> Status {
        std::string at = dir + "/" + base_name(target);
        if (::symlink(target.c_str(), at.c_str()) < 0 && errno != EEXIST) return Error::from_errno("symlink " + at);
        return {};
    };
    Status made;
    if (manifest.roots.empty())
        for (const auto& p : manifest.paths)
            if (made) made = link(p.path);
    for (const auto& r : manifest.roots)
        if (made) made = link(r);
    // The manifest itself, when it is a store path (lib.mkRootfs's is).
    char real[PATH_MAX];
    if (made && !manifest.file.empty() && ::realpath(manifest.file.c_str(), real)) {
        std::string path = real;
        if (path.starts_with(manifest.store_dir + "/")) {
            std::string top = path.substr(0, path.find('/', manifest.store_dir.size() + 1));
            made = link(top);
        }
    }
    if (!made) {
        (void)remove_tree(dir);
        return std::move(made).error().wrap("keeping a gc root for the closure");
    }
    return dir;
}

Status remove_closure_gcroot(const std::string& sandbox_id) {
    std::string base = closure_gcroots_dir();
    if (base.empty() || !plain_id(sandbox_id)) return {};
    std::string dir = base + "/" + sandbox_id;
    struct stat st {};
    if (::lstat(dir.c_str(), &st) < 0) return {};
    return remove_tree(dir);
}

}  // namespace nucleus::core
