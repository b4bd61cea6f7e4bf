#include "core/closure_attestation.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sha2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "io/bytes_json.hpp"
#include "io/unique_fd.hpp"

namespace nucleus::core {

namespace {

constexpr size_t chunk_bytes = 64 * 1024;
constexpr int max_depth = 256;  // deeper than any store path; a guard against a hostile tree

// Streams the NAR serialisation into SHA-256, counting its length.
class NarHasher {
public:
    NarHasher() { SHA256Init(&ctx_); }

    Status dump(const std::string& path) {
        str("nix-archive-1");
        return node(AT_FDCWD, path, path, 0);
    }

    NarDigest finish() {
        unsigned char out[SHA256_DIGEST_LENGTH];
        SHA256Final(out, &ctx_);
        static constexpr char hex[] = "0123456789abcdef";
        NarDigest d;
        for (unsigned char b : out) {
            d.sha256_hex += hex[b >> 4];
            d.sha256_hex += hex[b & 15];
        }
        d.sha256_nix32 = nix_base32(out, sizeof out);
        d.sha256_base64 = io::base64_encode(std::string_view(reinterpret_cast<const char*>(out), sizeof out));
        d.size = size_;
        return d;
    }

private:
    void raw(const void* data, size_t n) {
        SHA256Update(&ctx_, static_cast<const uint8_t*>(data), n);
        size_ += n;
    }
    void u64(uint64_t v) {
        unsigned char b[8];
        for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
        raw(b, 8);
    }
    void pad(uint64_t n) {
        static constexpr unsigned char zeros[8] = {};
        if (n % 8) raw(zeros, 8 - n % 8);
    }
    // A string: its length as 64-bit little endian, the bytes, zeros to 8.
    void str(std::string_view s) {
        u64(s.size());
        raw(s.data(), s.size());
        pad(s.size());
    }

    Status node(int dir_fd, const std::string& name, const std::string& shown, int depth) {
        if (depth > max_depth) return Error::plain(shown + ": nested deeper than " + std::to_string(max_depth));
        struct stat st {};
        if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return Error::from_errno("stat " + shown);
        str("(");
        str("type");
        if (S_ISREG(st.st_mode)) {
            NUCLEUS_TRY(regular(dir_fd, name, shown, st));
        } else if (S_ISLNK(st.st_mode)) {
            str("symlink");
            str("target");
            char target[4096];
            ssize_t n = ::readlinkat(dir_fd, name.c_str(), target, sizeof target);
            if (n < 0 || static_cast<size_t>(n) == sizeof target) return Error::from_errno("readlink " + shown);
            str(std::string_view(target, static_cast<size_t>(n)));
        } else if (S_ISDIR(st.st_mode)) {
            NUCLEUS_TRY(directory(dir_fd, name, shown, depth));
        } else {
            return Error::plain(shown + ": not a file, directory or symlink (a store path holds none)");
        }
        str(")");
        return {};
    }

    Status regular(int dir_fd, const std::string& name, const std::string& shown, const struct stat& st) {
        str("regular");
        if (st.st_mode & S_IXUSR) {
            str("executable");
            str("");
        }
        str("contents");
        auto fd = io::open_at(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (!fd) return std::move(fd).error();
        u64(static_cast<uint64_t>(st.st_size));
        uint64_t total = 0;
        buffer_.resize(chunk_bytes);
        for (;;) {
            ssize_t n = ::read(fd->get(), buffer_.data(), buffer_.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return Error::from_errno("read " + shown);
            if (n == 0) break;
            total += static_cast<uint64_t>(n);
            if (total > static_cast<uint64_t>(st.st_size)) return Error::plain(shown + " grew while it was hashed");
            raw(buffer_.data(), static_cast<size_t>(n));
        }
        if (total != static_cast<uint64_t>(st.st_size)) return Error::plain(shown + " shrank while it was hashed");
        pad(total);
        return {};
    }

    Status directory(int dir_fd, const std::string& name, const std::string& shown, int depth) {
        str("directory");
        auto fd = io::open_at(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!fd) return std::move(fd).error();
        auto listing = io::dup_fd(fd->get());
        if (!listing) return std::move(listing).error();
        DIR* d = ::fdopendir(listing->get());
        if (!d) return Error::from_errno("opendir " + shown);
        (void)listing->release();  // closedir closes it
        std::vector<std::string> names;
        while (dirent* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != "..") names.push_back(std::move(n));
        }
        ::closedir(d);
        std::sort(names.begin(), names.end());  // bytewise, as Nix's std::map
        for (const auto& n : names) {
            str("entry");
            str("(");
            str("name");
            str(n);
            str("node");
            NUCLEUS_TRY(node(fd->get(), n, shown + "/" + n, depth + 1));
            str(")");
        }
        return {};
    }

    SHA2_CTX ctx_{};
    uint64_t size_ = 0;
    std::vector<char> buffer_;
};

bool hash_matches(const std::string& want, const NarDigest& have) {
    if (want.starts_with("sha256:")) {
        std::string v = want.substr(7);
        return v == have.sha256_nix32 || v == have.sha256_hex;
    }
    return want == "sha256-" + have.sha256_base64;
}

}  // namespace

std::string nix_base32(const unsigned char* bytes, size_t size) {
    static constexpr char chars[] = "0123456789abcdfghijklmnpqrsvwxyz";
    size_t len = (size * 8 - 1) / 5 + 1;
    std::string out;
    for (size_t n = len; n-- > 0;) {
        size_t b = n * 5, i = b / 8, j = b % 8;
        unsigned c = bytes[i] >> j;
        if (i + 1 < size) c |= static_cast<unsigned>(bytes[i + 1]) << (8 - j);
        out += chars[c & 0x1f];
    }
    return out;
}

Result<NarDigest> nar_digest(const std::string& path) {
    NarHasher hasher;
    NUCLEUS_TRY(hasher.dump(path));
    return hasher.finish();
}

Result<std::vector<std::string>> verify_closure(const ClosureManifest& manifest) {
    std::vector<std::string> diffs;
    for (const auto& p : manifest.paths) {
        struct stat st {};
        if (::lstat(p.path.c_str(), &st) < 0) {
            if (errno != ENOENT) return Error::from_errno("stat " + p.path);
            diffs.push_back("missing: " + p.path);
            continue;
        }
        auto digest = nar_digest(p.path);
        if (!digest) return std::move(digest).error().wrap("hashing " + p.path);
        if (digest->size != p.nar_size)
            diffs.push_back("modified: " + p.path + " (nar size " + std::to_string(p.nar_size) + " -> " +
                            std::to_string(digest->size) + ")");
        else if (!hash_matches(p.nar_hash, *digest)) diffs.push_back("modified: " + p.path + " (nar hash differs)");
    }
    return diffs;
}

}  // namespace nucleus::core
