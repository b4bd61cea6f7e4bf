#include "isolation/elf_closure.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cctype>
#include <climits>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "io/unique_fd.hpp"

namespace nucleus::isolation {

namespace {

constexpr uint16_t em_386 = 3, em_x86_64 = 62, em_aarch64 = 183;
constexpr size_t max_objects = 8192;  // a closure larger than this is a hostile or broken tree

// A read-only private mapping of a whole file, unmapped by its destructor.
class Mapping {
public:
    static Result<Mapping> open(const std::string& path) {
        auto fd = io::open_fd(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
        if (!fd) return std::move(fd).error();
        struct stat st {};
        if (::fstat(fd->get(), &st) < 0) return Error::from_errno("fstat " + path);
        if (!S_ISREG(st.st_mode)) return Error::plain(path + ": not a regular file");
        Mapping m;
        m.size_ = static_cast<size_t>(st.st_size);
        if (m.size_ == 0) return m;
        void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd->get(), 0);
        if (p == MAP_FAILED) return Error::from_errno("mmap " + path);
        m.data_ = p;
        return m;
    }
    Mapping() = default;
    Mapping(Mapping&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(o.size_) {}
    Mapping& operator=(Mapping&&) = delete;
    ~Mapping() {
        if (data_) ::munmap(data_, size_);
    }
    std::string_view view() const { return data_ ? std::string_view(static_cast<const char*>(data_), size_) : ""; }

private:
    void* data_ = nullptr;
    size_t size_ = 0;
};

std::string dirname_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::vector<std::string> split_dirs(const std::string& list) {
    std::vector<std::string> dirs;
    size_t start = 0;
    for (;;) {
        size_t end = list.find(':', start);
        std::string dir = list.substr(start, end == std::string::npos ? std::string::npos : end - start);
        // An empty entry means the process's working directory at run time,
        // which is not knowable here (and not the rootfs's business).
        if (!dir.empty()) dirs.push_back(std::move(dir));
        if (end == std::string::npos) return dirs;
        start = end + 1;
    }
}

std::string triplet(uint16_t machine) {
    switch (machine) {
        case em_x86_64:
            return "x86_64-linux-gnu";
        case em_aarch64:
            return "aarch64-linux-gnu";
        case em_386:
            return "i386-linux-gnu";
        default:
            return "";
    }
}

uint16_t host_machine() {
    struct utsname u {};
    ::uname(&u);
    std::string m = u.machine;
    if (m == "x86_64") return em_x86_64;
    if (m == "aarch64") return em_aarch64;
    return em_386;
}

bool is_dir(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

struct Object {
    std::string path;  // as found (logical, without the root)
    ElfInfo info;
    int loader = -1;  // index of the object that needed it; -1 for the program
    std::string origin;  // $ORIGIN: the directory it was found in
};

// The program's $ORIGIN comes from its canonical path (the kernel's
// /proc/self/exe), libraries' from the path they were found at.
std::string canonical_dir(const std::string& root, const std::string& path) {
    char resolved[PATH_MAX];
    if (!::realpath((root + path).c_str(), resolved)) return dirname_of(path);
    std::string real = resolved;
    if (!root.empty()) {
        char base[PATH_MAX];
        std::string prefix = ::realpath(root.c_str(), base) ? base : root;
        if (!real.starts_with(prefix + "/")) return dirname_of(path);
        real = real.substr(prefix.size());
    }
    return dirname_of(real);
}

// Breadth-first over DT_NEEDED, as _dl_map_object_deps loads them.
class Resolver {
public:
    explicit Resolver(const LoaderConfig& loader) : loader_(loader) {}

    Result<ElfClosure> run(const std::string& program) {
        auto info = read_elf_file(loader_.root + program);
        if (!info) return std::move(info).error();
        objects_.push_back({program, std::move(*info), -1, canonical_dir(loader_.root, program)});
        closure_.files.push_back(program);
        if (objects_[0].info.interpreter) NUCLEUS_TRY(add_interpreter(*objects_[0].info.interpreter));
        for (size_t next = 0; next < objects_.size(); ++next) {
            auto needed = objects_[next].info.needed;  // copied: objects_ grows below
            for (const auto& name : needed) NUCLEUS_TRY(need(name, static_cast<int>(next)));
        }
        return std::move(closure_);
    }

private:
    Status add_interpreter(std::string path) {  // a copy: objects_ grows below
        if (path.empty() || path[0] != '/') return Error::plain("interpreter \"" + path + "\" is not an absolute path");
        auto info = read_elf_file(loader_.root + path);
        if (!info) return std::move(info).error().wrap("interpreter of " + objects_[0].path);
        loaded_[path] = static_cast<int>(objects_.size());
        if (info->soname) loaded_[*info->soname] = static_cast<int>(objects_.size());
        objects_.push_back({path, std::move(*info), 0, dirname_of(path)});
        closure_.files.push_back(path);
        return {};
    }

    Status need(const std::string& name, int requester) {
        if (loaded_.count(name)) return {};
        auto found = search(name, requester);
        if (!found) return std::move(found).error();
        if (!*found) {
            closure_.missing.push_back(name + " (needed by " + objects_[static_cast<size_t>(requester)].path + ")");
            loaded_[name] = -1;  // reported once
            return {};
        }
        auto& [path, info] = **found;
        if (auto same = by_path_.find(path); same != by_path_.end()) {
            loaded_[name] = same->second;  // the same file under another name
            return {};
        }
        if (objects_.size() >= max_objects)
            return Error::plain("more than " + std::to_string(max_objects) + " libraries");
        int index = static_cast<int>(objects_.size());
        loaded_[name] = index;
        if (info.soname) loaded_.emplace(*info.soname, index);
        by_path_[path] = index;
        std::string origin = dirname_of(path);
        objects_.push_back({path, std::move(info), requester, std::move(origin)});
        closure_.files.push_back(path);
        return {};
    }

    using Found = std::optional<std::pair<std::string, ElfInfo>>;

    // A candidate is taken when it is a regular ELF file of the program's
    // class and machine; anything else (missing, another class, not ELF) is
    // passed over, as the loader passes over it.
    Found try_path(const std::string& path) {
        auto info = read_elf_file(loader_.root + path);
        if (!info || !info->compatible_with(objects_[0].info)) return std::nullopt;
        return std::pair{path, std::move(*info)};
    }

    Found try_dirs(const std::vector<std::string>& dirs, const std::string& name, const Object& owner) {
        for (const auto& dir : dirs) {
            std::string expanded = expand_dst(dir, owner.origin, loader_);
            if (expanded.empty() || expanded[0] != '/') continue;  // relative: the run-time cwd
            if (auto found = try_path(expanded + (expanded.back() == '/' ? "" : "/") + name)) return found;
        }
        return std::nullopt;
    }

    Result<Found> search(const std::string& name, int requester) {
        const Object& asking = objects_[static_cast<size_t>(requester)];
        if (name.find('/') != std::string::npos) {
            if (name[0] != '/')
                return Error::plain(asking.path + " needs \"" + name +
                                    "\", a path relative to the run-time working directory");
            return try_path(name);
        }
        if (!asking.info.runpath) {
            for (int at = requester; at >= 0; at = objects_[static_cast<size_t>(at)].loader) {
                const Object& o = objects_[static_cast<size_t>(at)];
                if (!o.info.rpath || o.info.runpath) continue;  // RUNPATH voids an object's RPATH
                if (auto found = try_dirs(split_dirs(*o.info.rpath), name, o)) return found;
            }
        }
        if (asking.info.runpath)
            if (auto found = try_dirs(split_dirs(*asking.info.runpath), name, asking)) return found;
        if (asking.info.nodeflib) return Found{};
        for (const auto& entry : loader_.cache) {
            if (entry.soname != name || entry.hwcap != 0) continue;
            if (auto found = try_path(entry.path)) return found;
        }
        for (const auto& dir : loader_.default_dirs)
            if (auto found = try_path(dir + "/" + name)) return found;
        return Found{};
    }

    const LoaderConfig& loader_;
    std::vector<Object> objects_;
    std::map<std::string, int> loaded_;  // names (DT_NEEDED, DT_SONAME) -> object, -1 for missing
    std::map<std::string, int> by_path_;
    ElfClosure closure_;
};

}  // namespace

Result<ElfInfo> read_elf_file(const std::string& path) {
    auto map = Mapping::open(path);
    if (!map) return std::move(map).error();
    auto info = parse_elf(map->view());
    if (!info) return std::move(info).error().wrap(path);
    return info;
}

std::string expand_dst(const std::string& dir, const std::string& origin, const LoaderConfig& loader) {
    static const std::pair<const char*, int> tokens[] = {{"ORIGIN", 0}, {"LIB", 1}, {"PLATFORM", 2}};
    std::string out;
    for (size_t i = 0; i < dir.size(); ++i) {
        if (dir[i] != '$') {
            out += dir[i];
            continue;
        }
        bool matched = false;
        for (const auto& [token, which] : tokens) {
            std::string word = token;
            size_t len = 0;
            if (dir.compare(i + 1, word.size() + 2, "{" + word + "}") == 0) {
                len = word.size() + 2;
            } else if (dir.compare(i + 1, word.size(), word) == 0) {
                // $ORIGINfoo is not $ORIGIN: the name must end there.
                char after = i + 1 + word.size() < dir.size() ? dir[i + 1 + word.size()] : '/';
                if (std::isalnum(static_cast<unsigned char>(after)) || after == '_') continue;
                len = word.size();
            } else {
                continue;
            }
            out += which == 0 ? origin : which == 1 ? loader.lib_token : loader.platform_token;
            i += len;
            matched = true;
            break;
        }
        if (!matched) out += '$';
    }
    return out;
}

Result<LoaderConfig> host_loader_config(const std::string& root) {
    LoaderConfig config;
    config.root = root;
    uint16_t machine = host_machine();
    struct utsname u {};
    ::uname(&u);
    config.platform_token = u.machine;
    bool is_64 = machine != em_386;
    std::string multiarch = triplet(machine);
    bool has_multiarch = !multiarch.empty() && is_dir(root + "/lib/" + multiarch);
    if (has_multiarch) {
        config.default_dirs = {"/lib/" + multiarch, "/usr/lib/" + multiarch};
        config.lib_token = "lib/" + multiarch;
    } else if (is_64) {
        config.default_dirs = {"/lib64", "/usr/lib64"};
        config.lib_token = "lib64";
    }
    config.default_dirs.push_back("/lib");
    config.default_dirs.push_back("/usr/lib");
    std::string cache_path = root + "/etc/ld.so.cache";
    struct stat st {};
    if (::stat(cache_path.c_str(), &st) < 0) return config;  // no cache: the default directories only
    auto map = Mapping::open(cache_path);
    if (!map) return std::move(map).error();
    auto entries = parse_ld_so_cache(map->view());
    if (!entries) return std::move(entries).error().wrap(cache_path);
    config.cache = std::move(*entries);
    return config;
}

Result<ElfClosure> resolve_elf_closure(const std::string& path, const LoaderConfig& loader) {
    if (path.empty() || path[0] != '/') return Error::plain("\"" + path + "\" is not an absolute path");
    return Resolver(loader).run(path);
}

}  // namespace nucleus::isolation
