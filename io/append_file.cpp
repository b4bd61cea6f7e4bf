#include "io/append_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace nucleus::io {

Result<unique_fd> open_append_file(const std::string& path) {
    auto file = open_fd(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0640);
    if (!file) {
        if (file.error().code == ELOOP) return Error::plain(path + " is a symbolic link; give the file itself");
        return std::move(file).error();
    }
    struct stat st {};
    if (::fstat(file->get(), &st) < 0) return Error::from_errno("fstat " + path);
    if (!S_ISREG(st.st_mode)) return Error::plain(path + " is not a regular file");
    std::string parent = std::filesystem::path(path).parent_path().string();
    struct stat dir {};
    if (::stat(parent.empty() ? "." : parent.c_str(), &dir) < 0) return Error::from_errno("stat " + parent);
    if ((dir.st_mode & S_ISVTX) && st.st_uid != ::geteuid() && st.st_uid != dir.st_uid)
        return Error::plain(path + " belongs to uid " + std::to_string(st.st_uid) +
                            " in a sticky directory it does not own; refusing to write into another user's file");
    // O_NONBLOCK only kept the open from hanging on a fifo planted there.
    int flags = ::fcntl(file->get(), F_GETFL);
    if (flags >= 0) ::fcntl(file->get(), F_SETFL, flags & ~O_NONBLOCK);
    return file;
}

}  // namespace nucleus::io
