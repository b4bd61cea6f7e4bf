#include "core/attestation.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sha2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <sstream>

#include "io/unique_fd.hpp"

namespace nucleus::core {

namespace {

// SHA-256 from libmd (sha2.h).
struct Digest {
    SHA2_CTX ctx;
    Digest() { SHA256Init(&ctx); }
    void update(const void* data, size_t size) { SHA256Update(&ctx, static_cast<const uint8_t*>(data), size); }
};

std::string finish(Digest& digest) {
    uint8_t out[SHA256_DIGEST_LENGTH];
    SHA256Final(out, &digest.ctx);
    static const char hex[] = "0123456789abcdef";
    std::string text;
    for (size_t i = 0; i < sizeof out; ++i) {
        text += hex[out[i] >> 4];
        text += hex[out[i] & 15];
    }
    return text;
}

// Opens without following links and without blocking on a fifo.
Result<std::string> hash_fd_content(int fd, const std::string& what, uint64_t& bytes) {
    Digest digest;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("read " + what);
        }
        if (n == 0) break;
        digest.update(buf, static_cast<size_t>(n));
        bytes += static_cast<uint64_t>(n);
    }
    return finish(digest);
}

std::string escape(const std::string& path) {
    std::string out;
    char hex[5];
    for (unsigned char c : path) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c <= 0x20 || c == 0x7f) {
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else out += static_cast<char>(c);
    }
    return out;
}

Result<std::string> unescape(const std::string& text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\') {
            out += text[i];
            continue;
        }
        if (++i >= text.size()) return Error::plain("dangling escape");
        if (text[i] == '\\') out += '\\';
        else if (text[i] == 'n') out += '\n';
        else if (text[i] == 'x' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
            out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else return Error::plain("bad escape");
    }
    return out;
}

struct Entry {
    char type;
    unsigned mode;
    uint64_t uid, gid, size;
    std::string hash;  // "-" when not hashed

    bool operator==(const Entry&) const = default;
};

char type_of(mode_t m) {
    if (S_ISREG(m)) return 'f';
    if (S_ISDIR(m)) return 'd';
    if (S_ISLNK(m)) return 'l';
    if (S_ISCHR(m)) return 'c';
    if (S_ISBLK(m)) return 'b';
    if (S_ISFIFO(m)) return 'p';
    return 's';
}

// Walks `dir_fd` recursively (never following links), filling `entries`.
Status walk(int dir_fd, const std::string& prefix, std::map<std::string, Entry>& entries, uint64_t& bytes) {
    int copy = ::dup(dir_fd);
    DIR* dir = copy < 0 ? nullptr : ::fdopendir(copy);
    if (!dir) {
        if (copy >= 0) ::close(copy);
        return Error::from_errno("opendir " + (prefix.empty() ? "." : prefix));
    }
    std::vector<std::string> names;
    while (dirent* d = ::readdir(dir)) {
        std::string name = d->d_name;
        if (name == "." || name == ".." || (prefix.empty() && name == attestation_file)) continue;
        names.push_back(name);
    }
    ::closedir(dir);
    for (const auto& name : names) {
        std::string rel = prefix.empty() ? name : prefix + "/" + name;
        struct stat st {};
        if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return Error::from_errno("stat " + rel);
        Entry e{type_of(st.st_mode), static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid, 0, "-"};
        if (e.type == 'f') {
            auto fd = io::open_at(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
            if (!fd) return std::move(fd).error();
            auto hash = hash_fd_content(fd->get(), rel, bytes);
            if (!hash) return std::move(hash).error();
            e.size = static_cast<uint64_t>(st.st_size);
            e.hash = *hash;
        } else if (e.type == 'l') {
            char target[4096];
            ssize_t n = ::readlinkat(dir_fd, name.c_str(), target, sizeof target);
            if (n < 0) return Error::from_errno("readlink " + rel);
            e.size = static_cast<uint64_t>(n);
            e.hash = sha256_hex({target, static_cast<size_t>(n)});
        }
        entries[rel] = e;
        if (e.type == 'd') {
            auto sub = io::open_at(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (!sub) return std::move(sub).error();
            NUCLEUS_TRY(walk(sub->get(), rel, entries, bytes));
        }
    }
    return {};
}

Result<std::map<std::string, Entry>> scan(const std::string& dir, uint64_t& bytes) {
    auto root = io::open_fd(dir, O_RDONLY | O_DIRECTORY);
    if (!root) return std::move(root).error();
    std::map<std::string, Entry> entries;
    NUCLEUS_TRY(walk(root->get(), "", entries, bytes));
    return entries;
}

std::string format_line(const std::string& path, const Entry& e) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", e.mode);
    return std::string(1, e.type) + " " + mode + " " + std::to_string(e.uid) + " " + std::to_string(e.gid) + " " +
           std::to_string(e.size) + " " + e.hash + " " + escape(path) + "\n";
}

Result<Entry> parse_line(const std::string& line, std::string& path) {
    std::istringstream fields(line);
    std::string type, mode, uid, gid, size, hash, escaped;
    std::string extra;
    if (!(fields >> type >> mode >> uid >> gid >> size >> hash >> escaped) || (fields >> extra))
        return Error::plain("expected 7 fields");
    if (type.size() != 1 || std::string("fdlcbps").find(type[0]) == std::string::npos) return Error::plain("bad type");
    Entry e{type[0], 0, 0, 0, 0, hash};
    try {
        size_t used = 0;
        e.mode = static_cast<unsigned>(std::stoul(mode, &used, 8));
        if (used != mode.size() || e.mode > 07777) return Error::plain("bad mode");
        e.uid = std::stoull(uid);
        e.gid = std::stoull(gid);
        e.size = std::stoull(size);
    } catch (...) {
        return Error::plain("bad number");
    }
    bool hex = hash.size() == 64 && std::all_of(hash.begin(), hash.end(), [](unsigned char c) { return std::isxdigit(c); });
    if (!hex && hash != "-") return Error::plain("bad hash");
    auto decoded = unescape(escaped);
    if (!decoded) return std::move(decoded).error();
    path = *decoded;
    if (path.empty() || path[0] == '/' || path == ".." || path.starts_with("../") ||
        path.find("/../") != std::string::npos || path.ends_with("/.."))
        return Error::plain("path must be relative and inside the tree");
    return e;
}

std::string describe_change(const std::string& path, const Entry& want, const Entry& have) {
    char modes[32];
    std::snprintf(modes, sizeof modes, "%04o -> %04o", want.mode, have.mode);
    if (want.type != have.type) return "modified: " + path + " (type changed)";
    if (want.hash != have.hash) return "modified: " + path + " (sha256 differs)";
    if (want.size != have.size) return "modified: " + path + " (size differs)";
    if (want.mode != have.mode) return "modified: " + path + " (mode " + modes + ")";
    return "modified: " + path + " (owner " + std::to_string(want.uid) + ":" + std::to_string(want.gid) + " -> " +
           std::to_string(have.uid) + ":" + std::to_string(have.gid) + ")";
}

}  // namespace

std::string sha256_hex(std::string_view data) {
    Digest digest;
    digest.update(data.data(), data.size());
    return finish(digest);
}

Result<std::string> sha256_file(const std::string& path) {
    auto fd = io::open_fd(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (!fd) return std::move(fd).error();
    uint64_t bytes = 0;
    return hash_fd_content(fd->get(), path, bytes);
}

Result<AttestSummary> attest_rootfs(const std::string& dir) {
    AttestSummary summary;
    auto entries = scan(dir, summary.bytes_hashed);
    if (!entries) return std::move(entries).error().wrap("attesting " + dir);
    std::string manifest = "# nucleus rootfs attestation v1\n";
    for (const auto& [path, e] : *entries) manifest += format_line(path, e);
    summary.entries = entries->size();
    summary.manifest_path = dir + "/" + attestation_file;
    summary.manifest_sha256 = sha256_hex(manifest);
    std::string tmp = summary.manifest_path + ".tmp";
    auto fd = io::open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
    if (!fd) return std::move(fd).error();
    auto st = io::write_all(fd->get(), manifest);
    if (st && ::fsync(fd->get()) < 0) st = Error::from_errno("fsync " + tmp);
    if (st && ::rename(tmp.c_str(), summary.manifest_path.c_str()) < 0) st = Error::from_errno("rename " + tmp);
    if (!st) {
        ::unlink(tmp.c_str());
        return std::move(st).error();
    }
    return summary;
}

Result<std::vector<std::string>> verify_rootfs(const std::string& dir, const std::string& manifest_path) {
    std::string path = manifest_path.empty() ? dir + "/" + attestation_file : manifest_path;
    auto text = io::read_file(path, 256 << 20);
    if (!text) return std::move(text).error().wrap("reading the attestation");
    std::map<std::string, Entry> want;
    std::istringstream lines(*text);
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
        if (line.empty() || line[0] == '#') continue;
        std::string entry_path;
        auto e = parse_line(line, entry_path);
        if (!e) return Error::plain(path + ":" + std::to_string(number) + ": " + e.error().message);
        want[entry_path] = *e;
    }
    uint64_t bytes = 0;
    auto have = scan(dir, bytes);
    if (!have) return std::move(have).error().wrap("verifying " + dir);
    std::vector<std::string> diffs;
    for (const auto& [p, w] : want) {
        auto it = have->find(p);
        if (it == have->end()) diffs.push_back("missing: " + p);
        else if (!(it->second == w)) diffs.push_back(describe_change(p, w, it->second));
    }
    for (const auto& [p, h] : *have) {
        if (want.count(p)) continue;
        if (h.type == 'f' && (h.mode & 06000))
            diffs.push_back(std::string("extra ") + ((h.mode & 04000) ? "setuid" : "setgid") + " binary: " + p);
        else diffs.push_back("extra: " + p);
    }
    return diffs;
}

}  // namespace nucleus::core
