#include "core/attestation.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sha2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <map>
#include <memory>

#include "io/unique_fd.hpp"

namespace nucleus::core {

namespace {

constexpr std::string_view header = "# nucleus rootfs attestation v1";
constexpr size_t chunk_bytes = 64 * 1024;
constexpr char hex_digits[] = "0123456789abcdef";

// --- SHA-256 ---------------------------------------------------------------

// libmd's SHA-256 (sha2.h): a small digest library that links statically
// without pulling in NSS or dlopen, as OpenSSL's libcrypto.a would. It
// cannot fail; the Result interface stays so callers need not care.
class Sha256 {
public:
    static Result<Sha256> start() {
        Sha256 hash;
        SHA256Init(&hash.ctx_);
        return hash;
    }
    Status update(const void* data, size_t size) {
        SHA256Update(&ctx_, static_cast<const uint8_t*>(data), size);
        return {};
    }
    Result<std::string> finish() {
        uint8_t out[SHA256_DIGEST_LENGTH];
        SHA256Final(out, &ctx_);
        std::string text;
        for (uint8_t byte : out) {
            text += hex_digits[byte >> 4];
            text += hex_digits[byte & 15];
        }
        return text;
    }

private:
    SHA2_CTX ctx_{};
};

Result<std::string> digest(std::string_view data) {
    auto hash = Sha256::start();
    if (!hash) return std::move(hash).error();
    NUCLEUS_TRY(hash->update(data.data(), data.size()));
    return hash->finish();
}

// Streams fd to EOF through one caller-owned buffer; `bytes` counts what was read.
Result<std::string> digest_fd(int fd, const std::string& what, std::vector<char>& buffer, uint64_t& bytes) {
    auto hash = Sha256::start();
    if (!hash) return std::move(hash).error();
    buffer.resize(chunk_bytes);
    for (;;) {
        ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno("read " + what);
        if (n == 0) return hash->finish();
        NUCLEUS_TRY(hash->update(buffer.data(), static_cast<size_t>(n)));
        bytes += static_cast<uint64_t>(n);
    }
}

// --- Paths -----------------------------------------------------------------

std::string escape(std::string_view path) {
    std::string out;
    out.reserve(path.size());
    for (unsigned char c : path) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20 || c == 0x7f || c == ' ') {
            out += "\\x";
            out += hex_digits[c >> 4];
            out += hex_digits[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // uppercase is not what escape() writes, so not canonical
}

// Only the canonical form escape() writes is accepted: one manifest text per
// tree, and no second spelling of a path for a hand-edit to hide behind.
Result<std::string> unescape(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\') {
            out += text[i];
            continue;
        }
        char kind = i + 1 < text.size() ? text[i + 1] : '\0';
        if (kind == '\\' || kind == 'n') {
            out += kind == 'n' ? '\n' : '\\';
            i += 1;
        } else if (kind == 'x' && i + 3 < text.size() && hex_value(text[i + 2]) >= 0 && hex_value(text[i + 3]) >= 0) {
            out += static_cast<char>(hex_value(text[i + 2]) * 16 + hex_value(text[i + 3]));
            i += 3;
        } else {
            return Error::plain("bad escape in path");
        }
    }
    if (escape(out) != text) return Error::plain("path is not canonically escaped");
    return out;
}

// A manifest path must name something below DIR: relative, no empty, "." or
// ".." components, no NUL.
Status check_relative(const std::string& path) {
    if (path.empty()) return Error::plain("empty path");
    if (path.find('\0') != std::string::npos) return Error::plain("NUL byte in path");
    if (path.front() == '/') return Error::plain("absolute path");
    size_t start = 0;
    for (;;) {
        size_t end = path.find('/', start);
        std::string_view part(path.data() + start, (end == std::string::npos ? path.size() : end) - start);
        if (part.empty() || part == "." || part == "..")
            return Error::plain("path component \"" + std::string(part) + "\" (must stay below the root)");
        if (end == std::string::npos) return {};
        start = end + 1;
    }
}

std::string join(const std::string& dir, const std::string& name) {
    return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

// --- Entries ---------------------------------------------------------------

struct Entry {
    char type = 'f';
    unsigned mode = 0;  // permission bits, 07777
    uint32_t uid = 0, gid = 0;
    uint64_t size = 0;
    std::string hash = "-";

    bool operator==(const Entry&) const = default;
};

// std::string orders bytewise (char_traits<char> compares as unsigned char).
using Entries = std::map<std::string, Entry>;

char type_of(mode_t mode) {
    if (S_ISREG(mode)) return 'f';
    if (S_ISDIR(mode)) return 'd';
    if (S_ISLNK(mode)) return 'l';
    if (S_ISCHR(mode)) return 'c';
    if (S_ISBLK(mode)) return 'b';
    if (S_ISFIFO(mode)) return 'p';
    return 's';
}

const char* type_name(char type) {
    switch (type) {
        case 'f':
            return "file";
        case 'd':
            return "directory";
        case 'l':
            return "symlink";
        case 'c':
            return "char device";
        case 'b':
            return "block device";
        case 'p':
            return "fifo";
        default:
            return "socket";
    }
}

Entry entry_from(const struct stat& st) {
    Entry e;
    e.type = type_of(st.st_mode);
    e.mode = static_cast<unsigned>(st.st_mode & 07777);
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    return e;
}

std::string octal4(unsigned mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mode & 07777);
    return text;
}

std::string format_line(const std::string& path, const Entry& e) {
    return std::string(1, e.type) + " " + octal4(e.mode) + " " + std::to_string(e.uid) + " " + std::to_string(e.gid) +
           " " + std::to_string(e.size) + " " + e.hash + " " + escape(path) + "\n";
}

// --- The walk --------------------------------------------------------------

// Walks a tree through directory fds only: every step is an *at call on a
// name with AT_SYMLINK_NOFOLLOW / O_NOFOLLOW, and each opened inode is checked
// against the one stat'ed, so a tree changing underneath (or a hostile one
// swapping a file for a link or fifo) is an error, never a followed link.
class Walker {
public:
    Entries entries;
    uint64_t bytes_hashed = 0;

    Status run(int root_fd) {
        auto root = io::dup_fd(root_fd);
        if (!root) return std::move(root).error();
        NUCLEUS_TRY(scan_dir(std::make_shared<io::unique_fd>(std::move(*root)), ""));
        // Iterative, so a deep tree costs heap, not stack; open fds stay
        // bounded by the depth (a pending child keeps only its parent open).
        while (!pending_.empty()) {
            Pending next = std::move(pending_.back());
            pending_.pop_back();
            auto dir = open_checked(next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOCTTY);
            if (!dir) return std::move(dir).error();
            NUCLEUS_TRY(scan_dir(std::make_shared<io::unique_fd>(std::move(*dir)), next.rel));
        }
        return {};
    }

private:
    struct Pending {
        std::shared_ptr<io::unique_fd> parent;
        std::string name, rel;
        struct stat st;
    };
    std::vector<Pending> pending_;
    std::vector<char> buffer_;

    // Opens `p.name` in its parent and makes sure it is still the inode stat'ed.
    static Result<io::unique_fd> open_checked(const Pending& p, int flags) {
        auto fd = io::open_at(p.parent->get(), p.name, flags);
        if (!fd) return std::move(fd).error().wrap(escape(p.rel));
        struct stat now {};
        if (::fstat(fd->get(), &now) < 0) return Error::from_errno("fstat " + escape(p.rel));
        if (now.st_dev != p.st.st_dev || now.st_ino != p.st.st_ino || (now.st_mode & S_IFMT) != (p.st.st_mode & S_IFMT))
            return Error::plain(escape(p.rel) + " changed during the walk");
        return fd;
    }

    static std::string shown(const std::string& rel) { return rel.empty() ? "." : escape(rel); }

    Result<std::vector<std::string>> list(int dir_fd, const std::string& rel) {
        // A fresh open file description: readdir's offset is not shared with dir_fd.
        auto copy = io::open_at(dir_fd, ".", O_RDONLY | O_DIRECTORY);
        if (!copy) return std::move(copy).error().wrap("listing " + shown(rel));
        DIR* dir = ::fdopendir(copy->get());
        if (!dir) return Error::from_errno("fdopendir " + shown(rel));
        (void)copy->release();  // closedir closes it
        std::vector<std::string> names;
        for (;;) {
            errno = 0;
            dirent* d = ::readdir(dir);
            if (!d) break;
            std::string_view name = d->d_name;
            if (name == "." || name == ".." || (rel.empty() && name == attestation_file)) continue;
            names.emplace_back(name);
        }
        int saved = errno;
        ::closedir(dir);
        if (saved != 0) return Error::from_errno("readdir " + shown(rel), saved);
        return names;
    }

    Status scan_dir(const std::shared_ptr<io::unique_fd>& dir, const std::string& rel) {
        auto names = list(dir->get(), rel);
        if (!names) return std::move(names).error();
        for (auto& name : *names) {
            Pending p{dir, std::move(name), "", {}};
            p.rel = rel.empty() ? p.name : rel + "/" + p.name;
            if (::fstatat(dir->get(), p.name.c_str(), &p.st, AT_SYMLINK_NOFOLLOW) < 0)
                return Error::from_errno("stat " + escape(p.rel));
            auto entry = describe(p);
            if (!entry) return std::move(entry).error();
            entries.emplace(p.rel, std::move(*entry));
            if (S_ISDIR(p.st.st_mode)) pending_.push_back(std::move(p));
        }
        return {};
    }

    Result<Entry> describe(const Pending& p) {
        Entry e = entry_from(p.st);
        if (e.type == 'f') return describe_file(p);
        if (e.type == 'l') {
            auto target = read_link(p);
            if (!target) return std::move(target).error();
            e.size = target->size();
            auto hash = digest(*target);
            if (!hash) return std::move(hash).error();
            e.hash = std::move(*hash);
        }
        return e;
    }

    // O_NONBLOCK: if a fifo is swapped in after the stat, open does not
    // hang (and open_checked rejects it). Size and mode come from the opened
    // inode, and must still match after reading it.
    Result<Entry> describe_file(const Pending& p) {
        auto fd = open_checked(p, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (!fd) return std::move(fd).error();
        struct stat st {};
        if (::fstat(fd->get(), &st) < 0) return Error::from_errno("fstat " + escape(p.rel));
        uint64_t read_bytes = 0;
        auto hash = digest_fd(fd->get(), escape(p.rel), buffer_, read_bytes);
        if (!hash) return std::move(hash).error();
        bytes_hashed += read_bytes;
        if (read_bytes != static_cast<uint64_t>(st.st_size))
            return Error::plain(escape(p.rel) + " changed while it was hashed");
        Entry e = entry_from(st);
        e.size = read_bytes;
        e.hash = std::move(*hash);
        return e;
    }

    static Result<std::string> read_link(const Pending& p) {
        // st_size is the target length on most filesystems; grow if it lied.
        std::string target(static_cast<size_t>(p.st.st_size) + 1, '\0');
        for (;;) {
            ssize_t n = ::readlinkat(p.parent->get(), p.name.c_str(), target.data(), target.size());
            if (n < 0) return Error::from_errno("readlink " + escape(p.rel));
            if (static_cast<size_t>(n) < target.size()) {
                target.resize(static_cast<size_t>(n));
                return target;
            }
            if (target.size() >= (size_t{1} << 20))
                return Error::plain("readlink " + escape(p.rel) + ": target too long");
            target.resize(target.size() * 2);
        }
    }
};

// --- Parsing ---------------------------------------------------------------

template <class T>
bool parse_number(std::string_view text, T& out, int base) {
    if (text.empty() || text.size() > 20 || text.front() == '+' || text.front() == '-') return false;
    if (base == 10 && text.size() > 1 && text.front() == '0') return false;  // one spelling per number
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
    return ec == std::errc() && end == text.data() + text.size();
}

bool is_hash(std::string_view text) {
    if (text.size() != 64) return false;
    for (char c : text)
        if (hex_value(c) < 0) return false;
    return true;
}

Result<std::pair<std::string, Entry>> parse_line(std::string_view line) {
    std::vector<std::string_view> fields;
    for (size_t start = 0;;) {
        size_t end = line.find(' ', start);
        fields.push_back(line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
        if (end == std::string_view::npos || fields.size() > 7) break;
        start = end + 1;
    }
    if (fields.size() != 7) return Error::plain("expected 7 space-separated fields");
    Entry e;
    if (fields[0].size() != 1 || std::string_view("fdlcbps").find(fields[0][0]) == std::string_view::npos)
        return Error::plain("bad type \"" + escape(fields[0]) + "\"");
    e.type = fields[0][0];
    if (fields[1].size() != 4 || !parse_number(fields[1], e.mode, 8))
        return Error::plain("mode: expected 4 octal digits");
    if (!parse_number(fields[2], e.uid, 10)) return Error::plain("bad uid");
    if (!parse_number(fields[3], e.gid, 10)) return Error::plain("bad gid");
    if (!parse_number(fields[4], e.size, 10)) return Error::plain("bad size");
    bool hashed = e.type == 'f' || e.type == 'l';
    if (hashed ? !is_hash(fields[5]) : fields[5] != "-")
        return Error::plain(hashed ? "hash: expected 64 lowercase hex digits" : "hash: expected - for this type");
    if (!hashed && e.size != 0) return Error::plain("size: expected 0 for this type");
    e.hash = std::string(fields[5]);
    auto path = unescape(fields[6]);
    if (!path) return std::move(path).error();
    NUCLEUS_TRY(check_relative(*path));
    return std::pair{std::move(*path), std::move(e)};
}

// Strict: the header first, then entries in strictly increasing path order,
// each line ended by a newline. Errors read "origin:line: why".
Result<Entries> parse_manifest(std::string_view text, const std::string& origin) {
    auto at = [&](size_t line, const std::string& why) {
        return Error::plain(origin + ":" + std::to_string(line) + ": " + why);
    };
    Entries entries;
    const std::string* previous = nullptr;
    size_t number = 0;
    for (size_t start = 0; start < text.size() || number == 0;) {
        ++number;
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos)
            return at(number, text.empty() ? "empty manifest" : "no newline at the end (truncated?)");
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        if (number == 1) {
            if (line != header) return at(1, "expected \"" + std::string(header) + "\"");
            continue;
        }
        auto parsed = parse_line(line);
        if (!parsed) return at(number, parsed.error().message);
        if (previous && !(*previous < parsed->first)) return at(number, "paths not sorted or repeated");
        previous = &entries.emplace(std::move(parsed->first), std::move(parsed->second)).first->first;
    }
    return entries;
}

// Reads the manifest as a bounded regular file: never a fifo or a device.
Result<std::string> read_manifest(int dir_fd, const std::string& path, int nofollow) {
    auto fd = io::open_at(dir_fd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK | nofollow);
    if (!fd) return std::move(fd).error();
    struct stat st {};
    if (::fstat(fd->get(), &st) < 0) return Error::from_errno("fstat " + path);
    if (!S_ISREG(st.st_mode)) return Error::plain(path + ": not a regular file");
    auto too_big = [&] {
        return Error::plain(path + ": larger than " + std::to_string(max_manifest_bytes) + " bytes");
    };
    if (static_cast<uint64_t>(st.st_size) > max_manifest_bytes) return too_big();
    std::string text;
    text.reserve(static_cast<size_t>(st.st_size));
    std::vector<char> buffer(chunk_bytes);
    for (;;) {
        ssize_t n = ::read(fd->get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno("read " + path);
        if (n == 0) return text;
        if (text.size() + static_cast<size_t>(n) > max_manifest_bytes) return too_big();  // grew meanwhile
        text.append(buffer.data(), static_cast<size_t>(n));
    }
}

// --- Comparing -------------------------------------------------------------

std::string special_bits(unsigned mode) {
    if ((mode & 06000) == 06000) return "setuid+setgid";
    if (mode & 04000) return "setuid";
    if (mode & 02000) return "setgid";
    return "";
}

std::string describe_extra(const std::string& path, const Entry& e) {
    std::string bits = special_bits(e.mode);
    std::string kind = e.type == 'f' && !bits.empty() ? bits + " binary" : type_name(e.type);
    return "extra " + kind + ": " + escape(path) + " (mode " + octal4(e.mode) + ")";
}

std::string describe_change(const std::string& path, const Entry& want, const Entry& have) {
    std::vector<std::string> parts;
    if (want.type != have.type) {
        parts.push_back(std::string("type ") + type_name(want.type) + " -> " + type_name(have.type));
    } else {
        if (want.mode != have.mode) {
            std::string gained = special_bits(have.mode & ~want.mode);
            parts.push_back("mode " + octal4(want.mode) + " -> " + octal4(have.mode) +
                            (gained.empty() ? "" : ", now " + gained));
        }
        if (want.uid != have.uid || want.gid != have.gid)
            parts.push_back("owner " + std::to_string(want.uid) + ":" + std::to_string(want.gid) + " -> " +
                            std::to_string(have.uid) + ":" + std::to_string(have.gid));
        if (want.size != have.size)
            parts.push_back("size " + std::to_string(want.size) + " -> " + std::to_string(have.size));
        if (want.hash != have.hash) parts.push_back(have.type == 'l' ? "symlink target differs" : "sha256 differs");
    }
    std::string text = "modified: " + escape(path) + " (";
    for (size_t i = 0; i < parts.size(); ++i) text += (i ? ", " : "") + parts[i];
    return text + ")";
}

// Merges two path-sorted maps, so the report comes out in path order.
std::vector<std::string> compare(const Entries& want, const Entries& have) {
    std::vector<std::string> diffs;
    auto w = want.begin();
    auto h = have.begin();
    while (w != want.end() || h != have.end()) {
        if (h == have.end() || (w != want.end() && w->first < h->first)) {
            diffs.push_back("missing: " + escape(w->first));
            ++w;
        } else if (w == want.end() || h->first < w->first) {
            diffs.push_back(describe_extra(h->first, h->second));
            ++h;
        } else {
            if (!(w->second == h->second)) diffs.push_back(describe_change(w->first, w->second, h->second));
            ++w;
            ++h;
        }
    }
    return diffs;
}

// --- Writing ---------------------------------------------------------------

Result<std::string> temp_name() {
    unsigned char random[8];
    if (::getrandom(random, sizeof random, 0) != static_cast<ssize_t>(sizeof random))
        return Error::from_errno("getrandom");
    std::string name = std::string(attestation_file) + ".tmp-";
    for (unsigned char c : random) {
        name += hex_digits[c >> 4];
        name += hex_digits[c & 15];
    }
    return name;
}

// Temporary file, fsync, rename, fsync the directory: a crash leaves the old
// manifest or the new one, never half of one. All relative to the directory
// fd that was walked, so a path swapped meanwhile cannot redirect the write.
Status write_atomically(int dir_fd, const std::string& dir, std::string_view content) {
    auto tmp = temp_name();
    if (!tmp) return std::move(tmp).error();
    auto fd = io::open_at(dir_fd, *tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
    if (!fd) return std::move(fd).error().wrap("writing the manifest in " + dir);
    Status st = ::fchmod(fd->get(), 0644) < 0 ? Status(Error::from_errno("fchmod " + *tmp)) : Status{};  // not umask's
    if (st) st = io::write_all(fd->get(), content);
    if (st && ::fsync(fd->get()) < 0) st = Error::from_errno("fsync " + *tmp);
    if (st && ::renameat(dir_fd, tmp->c_str(), dir_fd, attestation_file) < 0) st = Error::from_errno("rename " + *tmp);
    if (!st) {
        ::unlinkat(dir_fd, tmp->c_str(), 0);
        return std::move(st).error().wrap("writing the manifest in " + dir);
    }
    if (::fsync(dir_fd) < 0) return Error::from_errno("fsync " + dir);
    return {};
}

}  // namespace

std::string sha256_hex(std::string_view data) {
    auto hash = digest(data);
    return hash ? std::move(*hash) : std::string();
}

Result<std::string> sha256_file(const std::string& path) {
    auto fd = io::open_fd(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (!fd) return std::move(fd).error();
    struct stat st {};
    if (::fstat(fd->get(), &st) < 0) return Error::from_errno("fstat " + path);
    if (!S_ISREG(st.st_mode)) return Error::plain(path + ": not a regular file");
    std::vector<char> buffer;
    uint64_t bytes = 0;
    return digest_fd(fd->get(), path, buffer, bytes);
}

Result<AttestSummary> attest_rootfs(const std::string& dir) {
    auto root = io::open_fd(dir, O_RDONLY | O_DIRECTORY);
    if (!root) return std::move(root).error().wrap("attesting " + dir);
    Walker walker;
    if (auto st = walker.run(root->get()); !st) return std::move(st).error().wrap("attesting " + dir);
    std::string manifest = std::string(header) + "\n";
    for (const auto& [path, e] : walker.entries) manifest += format_line(path, e);
    AttestSummary summary;
    summary.entries = walker.entries.size();
    summary.bytes_hashed = walker.bytes_hashed;
    summary.manifest_path = join(dir, attestation_file);
    auto hash = digest(manifest);
    if (!hash) return std::move(hash).error();
    summary.manifest_sha256 = std::move(*hash);
    NUCLEUS_TRY(write_atomically(root->get(), dir, manifest));
    return summary;
}

Result<std::vector<std::string>> verify_rootfs(const std::string& dir, const std::string& manifest_path) {
    auto root = io::open_fd(dir, O_RDONLY | O_DIRECTORY);
    if (!root) return std::move(root).error().wrap("verifying " + dir);
    // The default manifest lives in the tree: read it through the walked
    // directory fd and never through a symlink planted in its place.
    bool inside = manifest_path.empty();
    std::string origin = inside ? join(dir, attestation_file) : manifest_path;
    auto text =
        inside ? read_manifest(root->get(), attestation_file, O_NOFOLLOW) : read_manifest(AT_FDCWD, manifest_path, 0);
    if (!text) return std::move(text).error().wrap("reading the attestation");
    auto want = parse_manifest(*text, origin);
    if (!want) return std::move(want).error();
    Walker walker;
    if (auto st = walker.run(root->get()); !st) return std::move(st).error().wrap("verifying " + dir);
    return compare(*want, walker.entries);
}

}  // namespace nucleus::core
