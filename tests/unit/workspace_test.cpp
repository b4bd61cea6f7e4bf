#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <filesystem>
#include <fstream>

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
    fs::remove_all(dst);
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
    fs::remove_all(copy);
    fs::remove_all(outside);
}
