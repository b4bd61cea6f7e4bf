#include "core/rootfs_build.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <climits>
#include <set>
#include <variant>

#include "core/attestation.hpp"
#include "core/run.hpp"
#include "core/state.hpp"
#include "io/unique_fd.hpp"
#include "isolation/elf_closure.hpp"

namespace nucleus::core {

namespace {

constexpr int max_link_hops = 40;  // the kernel's limit on symlinks in one lookup (path_resolution(7))

std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::vector<std::string> components(const std::string& path) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= path.size()) {
        size_t end = path.find('/', start);
        if (end == std::string::npos) end = path.size();
        std::string part = path.substr(start, end - start);
        if (!part.empty() && part != ".") parts.push_back(std::move(part));
        start = end + 1;
    }
    return parts;
}

std::string join_rest(const std::vector<std::string>& parts, size_t from) {
    std::string out;
    for (size_t i = from; i < parts.size(); ++i) out += "/" + parts[i];
    return out;
}

// The first bytes of a file: enough to tell ELF from anything else.
Result<std::string> read_magic(const std::string& path) {
    auto fd = io::open_fd(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (!fd) return std::move(fd).error();
    char magic[4];
    ssize_t n = ::pread(fd->get(), magic, sizeof magic, 0);
    if (n < 0) return Error::from_errno("read " + path);
    return std::string(magic, static_cast<size_t>(n));
}

// The minimal /etc, as isolation/launch_plan.cpp generates it for the
// default agent root (root, the agent user 1000, nobody).
const std::pair<const char*, const char*> etc_files[] = {
    {"etc/passwd",
     "root:x:0:0:root:/root:/usr/sbin/nologin\n"
     "agent:x:1000:1000:agent:/home/agent:/bin/sh\n"
     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
    {"etc/group", "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n"},
    {"etc/nsswitch.conf",
     "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
     "protocols: files\nservices: files\nethers: files\nrpc: files\n"},
    {"etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"},
};

// Mirrors host paths into the tree under `dest`, each at its own path.
class HostCopier {
public:
    HostCopier(int dest_fd, const isolation::LoaderConfig& loader, RootfsBuildSummary& summary)
        : dest_(dest_fd), loader_(loader), summary_(summary) {}

    Status add_program(const std::string& path) {
        auto placed = place(path);
        if (!placed) return std::move(placed).error();
        if (!S_ISREG(placed->second.st_mode)) return Error::plain(path + ": not a regular file");
        auto magic = read_magic(placed->first);
        if (!magic) return std::move(magic).error();
        if (!isolation::has_elf_magic(*magic))
            return Error::plain(path +
                                ": not an ELF file (a script or data; add its interpreter with --from-host and "
                                "the script itself with --add)");
        return add_closure(path, true);
    }

    Status add(const std::string& path) {
        auto placed = place(path);
        if (!placed) return std::move(placed).error();
        const auto& [real, st] = *placed;
        if (S_ISDIR(st.st_mode)) return copy_tree(real);
        if (S_ISREG(st.st_mode)) return maybe_elf(real);
        return {};
    }

    // Writes `rel` unless an --add put a file there already.
    Status write_if_absent(const std::string& rel, std::string_view content) {
        struct stat st {};
        if (::fstatat(dest_, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return {};
        NUCLEUS_TRY(ensure_dir("/" + parent_of(rel), 0755));
        auto fd = io::open_at(dest_, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
        if (!fd) return std::move(fd).error();
        if (::fchmod(fd->get(), 0644) < 0) return Error::from_errno("fchmod " + rel);
        ++summary_.files;
        return io::write_all(fd->get(), content);
    }

    Status copy_host_file_if_present(const std::string& host, const std::string& rel) {
        struct stat st {};
        if (::stat(host.c_str(), &st) < 0 || !S_ISREG(st.st_mode)) return {};
        if (::fstatat(dest_, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return {};
        return add(host).wrap("copying " + host);
    }

private:
    using Placed = std::pair<std::string, struct stat>;  // the path without symlinks, its stat

    // Resolves `path` component by component as the kernel would, creating
    // on the way each directory (with its host mode) and each symlink (as
    // the same link) in the tree, and copying the final entry when it is a
    // regular file. Returns where the path really leads on the host.
    Result<Placed> place(std::string path) {
        if (path.empty() || path[0] != '/') return Error::plain("\"" + path + "\" is not an absolute path");
        const std::string asked = path;
        int hops = 0;
        for (;;) {
            auto next = place_step(path, asked, hops);
            if (!next) return std::move(next).error();
            if (auto* done = std::get_if<Placed>(&*next)) return std::move(*done);
            path = std::get<std::string>(std::move(*next));
        }
    }

    // One walk from /: where the path leads, or (at a symlink) the path to
    // walk next, the link's target with the rest of the components.
    using Step = std::variant<Placed, std::string>;
    Result<Step> place_step(const std::string& path, const std::string& asked, int& hops) {
        auto parts = components(path);
        std::string cur = "/";
        struct stat st {};
        if (::stat("/", &st) < 0) return Error::from_errno("stat /");
        for (size_t i = 0; i < parts.size(); ++i) {
            if (parts[i] == "..") {
                cur = parent_of(cur);
                continue;
            }
            std::string next = cur == "/" ? "/" + parts[i] : cur + "/" + parts[i];
            if (::lstat(next.c_str(), &st) < 0) return Error::from_errno(asked + ": " + next);
            if (S_ISLNK(st.st_mode)) {
                if (++hops > max_link_hops)
                    return Error::plain(asked + ": more than " + std::to_string(max_link_hops) +
                                        " symlinks on the way (a cycle of links?), the last at " + next);
                auto target = read_link(next);
                if (!target) return std::move(target).error();
                NUCLEUS_TRY(mirror_link(next, *target));
                return Step(((*target)[0] == '/' ? *target : cur + "/" + *target) + join_rest(parts, i + 1));
            }
            bool last = i + 1 == parts.size();
            if (S_ISDIR(st.st_mode)) {
                NUCLEUS_TRY(ensure_dir(next, st.st_mode & 01777));
            } else if (!last) {
                return Error::plain(asked + ": " + next + " is not a directory");
            } else if (S_ISREG(st.st_mode)) {
                NUCLEUS_TRY(copy_file(next, st));
            }
            cur = next;
        }
        return Step(Placed{cur, st});
    }

    static Result<std::string> read_link(const std::string& path) {
        char target[4096];
        ssize_t n = ::readlink(path.c_str(), target, sizeof target);
        if (n < 0) return Error::from_errno("readlink " + path);
        if (n == 0 || static_cast<size_t>(n) == sizeof target) return Error::plain(path + ": unusable symlink target");
        return std::string(target, static_cast<size_t>(n));
    }

    static std::string rel(const std::string& host) { return host.substr(1); }

    Status ensure_dir(const std::string& host, mode_t mode) {
        if (host == "/") return {};
        if (::mkdirat(dest_, rel(host).c_str(), 0700) == 0) {
            // Not umask's bits: the sandbox's ids need what the host has (o+x).
            if (::fchmodat(dest_, rel(host).c_str(), mode, 0) < 0) return Error::from_errno("chmod " + host);
            ++summary_.directories;
            return {};
        }
        if (errno != EEXIST) return Error::from_errno("mkdir " + host + " in the rootfs");
        struct stat st {};
        if (::fstatat(dest_, rel(host).c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            return Error::plain(host + " is a directory on the host but not in the rootfs (did it change meanwhile?)");
        return {};
    }

    Status mirror_link(const std::string& host, const std::string& target) {
        if (::symlinkat(target.c_str(), dest_, rel(host).c_str()) == 0) {
            ++summary_.symlinks;
            return {};
        }
        if (errno != EEXIST) return Error::from_errno("symlink " + host + " in the rootfs");
        return {};  // made earlier, from the same host link
    }

    Status copy_file(const std::string& host, const struct stat& st) {
        if (!copied_.insert(host).second) return {};
        auto in = io::open_fd(host, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (!in) return std::move(in).error();
        auto out = io::open_at(dest_, rel(host), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
        if (!out) return std::move(out).error().wrap("creating " + host + " in the rootfs");
        uint64_t total = 0;
        for (;;) {
            ssize_t n = ::copy_file_range(in->get(), nullptr, out->get(), nullptr, size_t{1} << 30, 0);
            if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) && total == 0)
                return copy_by_reading(in->get(), out->get(), host, st);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return Error::from_errno("copying " + host);
            if (n == 0) break;
            total += static_cast<uint64_t>(n);
        }
        return finish_file(out->get(), host, st, total);
    }

    Status copy_by_reading(int in, int out, const std::string& host, const struct stat& st) {
        std::vector<char> buffer(size_t{1} << 16);
        uint64_t total = 0;
        for (;;) {
            ssize_t n = ::read(in, buffer.data(), buffer.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return Error::from_errno("reading " + host);
            if (n == 0) break;
            NUCLEUS_TRY(io::write_all(out, std::string_view(buffer.data(), static_cast<size_t>(n))));
            total += static_cast<uint64_t>(n);
        }
        return finish_file(out, host, st, total);
    }

    Status finish_file(int out, const std::string& host, const struct stat& st, uint64_t total) {
        // setuid/setgid dropped: the rootfs is mounted nosuid, and a copy
        // owned by the caller must not carry the host owner's privileges.
        if (::fchmod(out, st.st_mode & 0777) < 0) return Error::from_errno("chmod " + host);
        ++summary_.files;
        summary_.bytes += total;
        return {};
    }

    Status maybe_elf(const std::string& host) {
        auto magic = read_magic(host);
        if (!magic || !isolation::has_elf_magic(*magic)) return {};
        return add_closure(host, false);
    }

    // The ELF closure of a program (every library required) or of an ELF
    // file in an --add tree (missing libraries are warnings).
    Status add_closure(const std::string& path, bool required) {
        if (!resolved_.insert(path).second) return {};
        auto closure = isolation::resolve_elf_closure(path, loader_);
        if (!closure) {
            if (required) return std::move(closure).error();
            summary_.warnings.push_back(closure.error().describe() + " (copied, its libraries not resolved)");
            return {};
        }
        if (required && !closure->missing.empty()) {
            std::string list;
            for (const auto& m : closure->missing) list += (list.empty() ? "" : ", ") + m;
            return Error::plain(path +
                                ": libraries not found by the loader's search (RPATH, RUNPATH, ld.so.cache, "
                                "default directories): " +
                                list);
        }
        for (const auto& m : closure->missing) summary_.warnings.push_back("library " + m + " not found");
        for (const auto& file : closure->files) {
            if (!elf_files_.insert(file).second) continue;
            ++summary_.elf_objects;
            auto placed = place(file);
            if (!placed) return std::move(placed).error().wrap("copying the closure of " + path);
        }
        return {};
    }

    // An --add directory, whole: every entry at its path.
    Status copy_tree(const std::string& top) {
        std::vector<std::string> pending = {top};
        while (!pending.empty()) {
            std::string dir = std::move(pending.back());
            pending.pop_back();
            auto names = list(dir);
            if (!names) return std::move(names).error();
            for (const auto& name : *names) {
                std::string host = dir + "/" + name;
                struct stat st {};
                if (::lstat(host.c_str(), &st) < 0) return Error::from_errno("lstat " + host);
                if (S_ISDIR(st.st_mode)) {
                    NUCLEUS_TRY(ensure_dir(host, st.st_mode & 01777));
                    pending.push_back(host);
                } else if (S_ISREG(st.st_mode)) {
                    NUCLEUS_TRY(copy_file(host, st));
                    NUCLEUS_TRY(maybe_elf(host));
                } else if (S_ISLNK(st.st_mode)) {
                    NUCLEUS_TRY(copy_link(host, top));
                } else {
                    summary_.warnings.push_back("skipped " + host + ": not a file, directory or symlink");
                }
            }
        }
        return {};
    }

    // A link inside an --add tree stays a link; a file it leads to outside
    // the tree is added with it (a directory there is not: it could be /).
    Status copy_link(const std::string& host, const std::string& top) {
        auto target = read_link(host);
        if (!target) return std::move(target).error();
        NUCLEUS_TRY(mirror_link(host, *target));
        struct stat st {};
        if (::stat(host.c_str(), &st) < 0) {
            summary_.warnings.push_back(host + " -> " + *target + " dangles on the host, and in the rootfs");
            return {};
        }
        std::string whole = (*target)[0] == '/' ? *target : parent_of(host) + "/" + *target;
        if (S_ISREG(st.st_mode)) return add(whole);
        if (S_ISDIR(st.st_mode)) {
            char real[PATH_MAX];
            std::string resolved = ::realpath(host.c_str(), real) ? real : "";
            if (!(resolved == top || resolved.starts_with(top + "/")))
                summary_.warnings.push_back(host + " -> " + *target + " leads to a directory outside " + top +
                                            " that was not copied (add it with --add)");
        }
        return {};
    }

    static Result<std::vector<std::string>> list(const std::string& dir) {
        DIR* d = ::opendir(dir.c_str());
        if (!d) return Error::from_errno("opendir " + dir);
        std::vector<std::string> names;
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name != "." && name != "..") names.push_back(name);
        }
        ::closedir(d);
        return names;
    }

    int dest_;
    const isolation::LoaderConfig& loader_;
    RootfsBuildSummary& summary_;
    std::set<std::string> copied_, resolved_, elf_files_;
};

// -o DIR may not exist yet, or be an empty directory; its parent must exist.
Status check_output(const std::string& output) {
    if (output.empty()) return Error::plain("-o: the output directory must not be empty");
    struct stat st {};
    if (::lstat(output.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return Error::plain("-o " + output + ": exists and is not a directory");
        DIR* d = ::opendir(output.c_str());
        if (!d) return Error::from_errno("-o " + output);
        bool empty = true;
        while (dirent* e = ::readdir(d))
            if (std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..") empty = false;
        ::closedir(d);
        if (!empty) return Error::plain("-o " + output + ": exists and is not empty (refusing to replace it)");
    } else if (errno != ENOENT) {
        return Error::from_errno("-o " + output);
    }
    std::string parent = parent_of(output);
    if (::stat(parent.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
        return Error::plain("-o " + output + ": the parent directory " + parent + " does not exist");
    return {};
}

// Everything a bad command line can get wrong, before anything is made.
Status check_request(const RootfsBuildRequest& request) {
    if (request.programs.empty() && request.adds.empty())
        return Error::plain("nothing to build: give --from-host PROGRAM (and --add PATH)");
    for (const auto* list : {&request.programs, &request.adds}) {
        for (const auto& path : *list) {
            const char* flag = list == &request.programs ? "--from-host " : "--add ";
            if (path.empty() || path[0] != '/') return Error::plain(flag + path + ": must be an absolute path");
            struct stat st {};
            if (::stat(path.c_str(), &st) < 0) return Error::from_errno(flag + path);
        }
    }
    return check_output(request.output);
}

Status fill(int dest_fd, const RootfsBuildRequest& request, RootfsBuildSummary& summary) {
    auto loader = isolation::host_loader_config();
    if (!loader) return std::move(loader).error().wrap("reading the dynamic loader's configuration");
    HostCopier copier(dest_fd, *loader, summary);
    for (const auto& program : request.programs) NUCLEUS_TRY(copier.add_program(program).wrap("--from-host"));
    for (const auto& path : request.adds) NUCLEUS_TRY(copier.add(path).wrap("--add"));
    for (const auto& [rel, content] : etc_files) NUCLEUS_TRY(copier.write_if_absent(rel, content));
    return copier.copy_host_file_if_present("/etc/ld.so.cache", "etc/ld.so.cache");
}

}  // namespace

Result<RootfsBuildSummary> build_rootfs_from_host(const RootfsBuildRequest& request) {
    NUCLEUS_TRY(check_request(request));
    std::string output = request.output;
    while (output.size() > 1 && output.back() == '/') output.pop_back();
    std::string temp = parent_of(output) + "/." + base_of(output) + ".nucleus-build-XXXXXX";
    if (!::mkdtemp(temp.data())) return Error::from_errno("creating a temporary directory beside " + output);
    RootfsBuildSummary summary;
    auto built = [&]() -> Status {
        // mkdtemp makes 0700; the sandbox's ids must be able to search the root.
        if (::chmod(temp.c_str(), 0755) < 0) return Error::from_errno("chmod " + temp);
        auto dest = io::open_fd(temp, O_RDONLY | O_DIRECTORY);
        if (!dest) return std::move(dest).error();
        NUCLEUS_TRY(fill(dest->get(), request, summary));
        auto attested = attest_rootfs(temp);
        if (!attested) return std::move(attested).error();
        summary.manifest_sha256 = attested->manifest_sha256;
        if (::syncfs(dest->get()) < 0) return Error::from_errno("syncfs " + temp);
        if (::rename(temp.c_str(), output.c_str()) < 0)
            return Error::from_errno("renaming the finished tree to " + output);
        return {};
    }();
    if (!built) {
        (void)remove_tree(temp);
        return std::move(built).error();
    }
    return summary;
}

int rootfs_build_command(const RootfsBuildRequest& request) {
    auto summary = build_rootfs_from_host(request);
    if (!summary) {
        std::fprintf(stderr, "nucleus: error: rootfs build: %s\n", summary.error().describe().c_str());
        return exit_runtime_error;
    }
    for (const auto& w : summary->warnings) std::fprintf(stderr, "nucleus: warning: %s\n", w.c_str());
    std::printf(
        "built %s: %llu files (%llu bytes), %llu symlinks, %llu directories; %llu ELF objects\n"
        "manifest %s/%s\nsha256 %s\n",
        request.output.c_str(), static_cast<unsigned long long>(summary->files),
        static_cast<unsigned long long>(summary->bytes), static_cast<unsigned long long>(summary->symlinks),
        static_cast<unsigned long long>(summary->directories), static_cast<unsigned long long>(summary->elf_objects),
        request.output.c_str(), attestation_file, summary->manifest_sha256.c_str());
    return 0;
}

}  // namespace nucleus::core
