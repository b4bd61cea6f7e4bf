#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/workspace.hpp"
#include "io/unique_fd.hpp"

using namespace nucleus::core;
namespace fs = std::filesystem;

namespace {
fs::path fresh_dir(const std::string& tag) {
    auto dir = fs::temp_directory_path() / ("nucleus-ws-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}
std::string content(const fs::path& p) { return nucleus::io::read_file(p.string()).value(); }
struct stat lstat_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st;
}
// What each copy-in gave, by the copy's path (the runtime keeps it in memory).
std::map<std::string, Manifest>& manifests() {
    static std::map<std::string, Manifest> m;
    return m;
}
nucleus::io::unique_fd dir_fd(const std::string& path) {
    return nucleus::io::open_fd(path, O_RDONLY | O_DIRECTORY).value();
}
// Path-based forms of the descriptor-based API, for these tests.
nucleus::Status copy_tree(const std::string& from, const std::string& to, const CopyOwner& owner) {
    auto given = nucleus::core::copy_tree(dir_fd(from).get(), dir_fd(to).get(), owner);
    if (!given) return std::move(given).error();
    manifests()[to] = *given;
    return {};
}
nucleus::Result<SyncReport> sync_report(const std::string& copy, const std::string& host, const CopyOwner& owner) {
    return nucleus::core::sync_tree_back(dir_fd(copy).get(), dir_fd(host).get(), manifests()[copy], owner);
}
// A complete sync: no error, no conflict.
nucleus::Status sync_tree_back(const std::string& copy, const std::string& host, const CopyOwner& owner) {
    auto report = sync_report(copy, host, owner);
    if (!report) return std::move(report).error();
    for (const auto& c : report->conflicts) UNSCOPED_INFO("conflict: " << c);
    if (!report->conflicts.empty()) return nucleus::Error::plain(report->conflicts.front());
    return {};
}
void remove_copy(const fs::path& copy) {
    fs::remove_all(copy);
    manifests().erase(copy.string());
}
void set_mtime(const fs::path& p, time_t when) {
    struct timespec times[2] = {{when, 0}, {when, 0}};
    REQUIRE(::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}
}  // namespace

TEST_CASE("copy_tree copies files and links, strips setuid, skips fifos") {
    auto src = fresh_dir("src"), dst = fresh_dir("dst");
    fs::create_directories(src / "sub");
    std::ofstream(src / "sub" / "a.txt") << "hello";
    std::ofstream(src / "tool") << "#!/bin/sh\n";
    ::chmod((src / "tool").c_str(), 04755);
    fs::create_symlink("/etc/shadow", src / "link");
    ::mkfifo((src / "fifo").c_str(), 0600);
    REQUIRE(copy_tree(src.string(), dst.string(), CopyOwner{0, 0, false}));
    CHECK(content(dst / "sub" / "a.txt") == "hello");
    struct stat st {};
    REQUIRE(::stat((dst / "tool").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
    CHECK(fs::is_symlink(dst / "link"));
    CHECK(fs::read_symlink(dst / "link") == "/etc/shadow");
    CHECK_FALSE(fs::exists(fs::symlink_status(dst / "fifo")));
    fs::remove_all(src);
    remove_copy(dst);
}

TEST_CASE("sync_tree_back mirrors changes and never writes through a link") {
    auto host = fresh_dir("host"), copy = fresh_dir("copy"), outside = fresh_dir("outside");
    std::ofstream(host / "keep.txt") << "old";
    std::ofstream(host / "deleted.txt") << "bye";
    fs::create_directories(host / "dir");
    std::ofstream(host / "dir" / "inner") << "x";
    REQUIRE(copy_tree(host.string(), copy.string(), CopyOwner{0, 0, false}));
    // The sandbox edits, deletes, adds, and swaps a directory for a link.
    std::ofstream(copy / "keep.txt") << "new content";
    fs::remove(copy / "deleted.txt");
    std::ofstream(copy / "added.txt") << "added";
    fs::remove_all(copy / "dir");
    fs::create_symlink(outside.string(), copy / "dir");
    REQUIRE(sync_tree_back(copy.string(), host.string(), CopyOwner{0, 0, false}));
    CHECK(content(host / "keep.txt") == "new content");
    CHECK(content(host / "added.txt") == "added");
    CHECK_FALSE(fs::exists(host / "deleted.txt"));
    CHECK(fs::is_symlink(host / "dir"));
    CHECK(fs::is_empty(outside));  // nothing was written through the link
    fs::remove_all(host);
    remove_copy(copy);
    fs::remove_all(outside);
}

TEST_CASE("sync_tree_back leaves alone what the sandbox never saw: fifos, sockets, devices, new host files") {
    auto host = fresh_dir("unseen-host"), copy = fresh_dir("unseen-copy");
    fs::create_directories(host / "sub");
    fs::create_directories(host / "gone");
    std::ofstream(host / "file.txt") << "regular";
    std::ofstream(host / "gone" / "x") << "x";
    REQUIRE(::mkfifo((host / "fifo").c_str(), 0644) == 0);
    REQUIRE(::mkfifo((host / "sub" / "nested-fifo").c_str(), 0644) == 0);
    REQUIRE(::mkfifo((host / "gone" / "fifo").c_str(), 0644) == 0);
    int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(sock >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string sock_path = (host / "sock").string();
    REQUIRE(sock_path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
    REQUIRE(::bind(sock, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    ::close(sock);
    bool root = ::geteuid() == 0;
    if (root) REQUIRE(::mknod((host / "null").c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0);
    REQUIRE(copy_tree(host.string(), copy.string(), CopyOwner{0, 0, false}));
    CHECK_FALSE(fs::exists(fs::symlink_status(copy / "fifo")));
    // Meanwhile, on the host: a new file. In the sandbox: "gone" is deleted.
    std::ofstream(host / "made-on-host.txt") << "host";
    fs::remove_all(copy / "gone");
    REQUIRE(sync_tree_back(copy.string(), host.string(), CopyOwner{0, 0, false}));
    CHECK(content(host / "file.txt") == "regular");
    CHECK(fs::is_fifo(fs::symlink_status(host / "fifo")));
    CHECK(fs::is_fifo(fs::symlink_status(host / "sub" / "nested-fifo")));
    CHECK(fs::is_socket(fs::symlink_status(host / "sock")));
    if (root) CHECK(fs::is_character_file(fs::symlink_status(host / "null")));
    CHECK(content(host / "made-on-host.txt") == "host");
    // What the sandbox deleted goes; the fifo it never saw stays, with its directory.
    CHECK_FALSE(fs::exists(host / "gone" / "x"));
    CHECK(fs::is_fifo(fs::symlink_status(host / "gone" / "fifo")));
    fs::remove_all(host);
    remove_copy(copy);
}

TEST_CASE("copy_tree keeps mtimes, modes and hard links; sync_tree_back rewrites only what changed") {
    auto host = fresh_dir("mtime-host"), copy = fresh_dir("mtime-copy");
    fs::create_directories(host / "dir");
    std::ofstream(host / "old.txt") << "untouched\n";
    REQUIRE(::link((host / "old.txt").c_str(), (host / "hardlink.txt").c_str()) == 0);
    std::ofstream(host / "edited.txt") << "before\n";
    std::ofstream(host / "touched.txt") << "same\n";
    std::ofstream(host / "dir" / "inner.txt") << "inner\n";
    ::chmod((host / "old.txt").c_str(), 0640);
    for (const char* name : {"old.txt", "edited.txt", "touched.txt", "dir/inner.txt", "dir"})
        set_mtime(host / name, 1577836800);  // 2020-01-01
    auto before = lstat_of(host / "old.txt");
    auto touched_before = lstat_of(host / "touched.txt");
    REQUIRE(before.st_nlink == 2);

    REQUIRE(copy_tree(host.string(), copy.string(), CopyOwner{0, 0, false}));
    auto copied = lstat_of(copy / "old.txt");
    CHECK(copied.st_mtim.tv_sec == 1577836800);
    CHECK((copied.st_mode & 07777) == 0640);
    CHECK(copied.st_nlink == 2);  // hard links stay hard links in the copy
    CHECK(lstat_of(copy / "hardlink.txt").st_ino == copied.st_ino);
    CHECK(lstat_of(copy / "dir").st_mtim.tv_sec == 1577836800);

    // The sandbox edits one file, touches another without changing it.
    std::ofstream(copy / "edited.txt") << "after, longer\n";
    set_mtime(copy / "touched.txt", 1600000000);
    REQUIRE(sync_tree_back(copy.string(), host.string(), CopyOwner{0, 0, false}));

    auto after = lstat_of(host / "old.txt");
    CHECK(content(host / "old.txt") == "untouched\n");
    CHECK(after.st_ino == before.st_ino);
    CHECK(after.st_nlink == 2);
    CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
    CHECK(after.st_ctim.tv_sec == before.st_ctim.tv_sec);
    CHECK(lstat_of(host / "hardlink.txt").st_ino == before.st_ino);
    CHECK(content(host / "edited.txt") == "after, longer\n");
    auto touched = lstat_of(host / "touched.txt");
    CHECK(touched.st_ino == touched_before.st_ino);  // same content: not rewritten
    CHECK(touched.st_mtim.tv_sec == 1600000000);  // but its mtime follows
    CHECK(lstat_of(host / "dir" / "inner.txt").st_mtim.tv_sec == 1577836800);
    fs::remove_all(host);
    remove_copy(copy);
}

TEST_CASE("sync_tree_back keeps a hard link group the sandbox edited in place, splits one it broke") {
    auto host = fresh_dir("links-host"), copy = fresh_dir("links-copy");
    std::ofstream(host / "a") << "one\n";
    REQUIRE(::link((host / "a").c_str(), (host / "b").c_str()) == 0);
    std::ofstream(host / "c") << "three\n";
    REQUIRE(::link((host / "c").c_str(), (host / "d").c_str()) == 0);
    REQUIRE(copy_tree(host.string(), copy.string(), CopyOwner{0, 0, false}));
    std::ofstream(copy / "a") << "one, edited in place\n";  // b is the same inode in the copy
    fs::remove(copy / "c");  // an editor's rename: c is a new file
    std::ofstream(copy / "c") << "three, replaced\n";
    REQUIRE(sync_tree_back(copy.string(), host.string(), CopyOwner{0, 0, false}));
    CHECK(content(host / "a") == "one, edited in place\n");
    CHECK(content(host / "b") == "one, edited in place\n");
    CHECK(lstat_of(host / "a").st_ino == lstat_of(host / "b").st_ino);
    CHECK(content(host / "c") == "three, replaced\n");
    CHECK(content(host / "d") == "three\n");
    CHECK(lstat_of(host / "c").st_ino != lstat_of(host / "d").st_ino);
    fs::remove_all(host);
    remove_copy(copy);
}

TEST_CASE("sync_tree_back never deletes host entries the sandbox did not see, even when it replaced their directory") {
    // The sandbox ran `rm -rf /workspace/d; ln -s /x /workspace/d` while the
    // host put a fifo and a file into d/.
    auto host = fresh_dir("host-unseen"), copy = fresh_dir("copy-unseen");
    fs::create_directories(host / "d");
    std::ofstream(host / "d" / "seen.txt") << "given to the sandbox";
    std::ofstream(host / "keep.txt") << "untouched";
    REQUIRE(copy_tree(host.string(), copy.string(), CopyOwner{0, 0, false}));
    REQUIRE(::mkfifo((host / "d" / "fifo").c_str(), 0600) == 0);
    std::ofstream(host / "d" / "written-during-run") << "host data";
    fs::remove_all(copy / "d");
    fs::create_symlink("/x", copy / "d");
    auto report = sync_report(copy.string(), host.string(), CopyOwner{0, 0, false});
    REQUIRE(report);
    REQUIRE(report->conflicts.size() == 1);
    CHECK(report->conflicts[0].starts_with("d: the sandbox replaced this directory"));
    CHECK(fs::is_directory(fs::symlink_status(host / "d")));
    CHECK(content(host / "d" / "written-during-run") == "host data");
    CHECK(fs::exists(fs::symlink_status(host / "d" / "fifo")));
    CHECK_FALSE(fs::exists(host / "d" / "seen.txt"));  // what it saw and deleted is deleted
    CHECK(content(host / "keep.txt") == "untouched");
    fs::remove_all(host);
    remove_copy(copy);
}

TEST_CASE("sync_tree_back: a file the host created meanwhile under a name the sandbox also used is a conflict") {
    auto host = fresh_dir("host-both"), copy = fresh_dir("copy-both");
    REQUIRE(copy_tree(host.string(), copy.string(), CopyOwner{0, 0, false}));
    std::ofstream(host / "report.txt") << "host's";
    std::ofstream(copy / "report.txt") << "sandbox's";
    auto report = sync_report(copy.string(), host.string(), CopyOwner{0, 0, false});
    REQUIRE(report);
    REQUIRE(report->conflicts.size() == 1);
    CHECK(report->conflicts[0].starts_with("report.txt: created on the host during the run"));
    CHECK(content(host / "report.txt") == "host's");
    fs::remove_all(host);
    remove_copy(copy);
}

TEST_CASE("copy_tree and sync_tree_back handle trees deeper than PATH_MAX") {
    // 155 nested 25-character directories: valid inside, over PATH_MAX at
    // the host's path. Every step is relative to a directory descriptor.
    auto host = fresh_dir("host-deep"), copy = fresh_dir("copy-deep");
    std::string level(25, 'd');
    auto descend = [&](const fs::path& root, bool create) {
        int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; i < 155; ++i) {
            if (create) REQUIRE(::mkdirat(fd, level.c_str(), 0755) == 0);
            int next = ::openat(fd, level.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            REQUIRE(next >= 0);
            ::close(fd);
            fd = next;
        }
        return fd;
    };
    int bottom = descend(host, true);
    REQUIRE(::close(::openat(bottom, "old.txt", O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == 0);
    ::close(bottom);
    REQUIRE(copy_tree(host.string(), copy.string(), CopyOwner{0, 0, false}));
    bottom = descend(copy, false);
    REQUIRE(::unlinkat(bottom, "old.txt", 0) == 0);
    int made = ::openat(bottom, "new.txt", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    REQUIRE(::write(made, "deep", 4) == 4);
    ::close(made);
    ::close(bottom);
    REQUIRE(sync_tree_back(copy.string(), host.string(), CopyOwner{0, 0, false}));
    bottom = descend(host, false);
    struct stat st {};
    CHECK(::fstatat(bottom, "new.txt", &st, 0) == 0);
    CHECK(st.st_size == 4);
    CHECK(::fstatat(bottom, "old.txt", &st, 0) < 0);
    ::close(bottom);
    // rm -rf by descriptor: the tree is too deep for paths.
    auto remove_deep = [&](const fs::path& root) {
        std::string cmd = "cd " + root.string() + " && rm -rf " + level;
        REQUIRE(std::system(cmd.c_str()) == 0);
        fs::remove_all(root);
    };
    remove_deep(host);
    remove_deep(copy);
    manifests().erase(copy.string());
}
