// The filesystem promises: workspace modes, noexec, volumes, the context
// copy, home, /tmp, the read-only root, and a denial only Landlock makes.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include "harness.hpp"

using namespace nit;

namespace {

// The checker, copied to `path` (mode 0755), as a program to execute.
void install_tool(const fs::path& path) {
    fs::copy_file(fs::path(kCheckerDir) / "nucleus-check", path, fs::copy_options::overwrite_existing);
    fs::permissions(path, fs::perms(0755));
}

struct stat lstat_of(const fs::path& path) {
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st;
}

std::string sh_output(const std::vector<std::string>& flags, const std::string& script, int expected_exit = 0) {
    auto r = run_nucleus(with_checker(flags), {"/bin/sh", "-c", script});
    INFO(r.describe());
    CHECK(r.exit_code == expected_exit);
    return r.out;
}

}  // namespace

TEST_CASE("bind-rw workspace: reads and writes go straight to the host directory", "[filesystem][workspace]") {
    require_root();
    TempDir dir("ws");
    fs::path ws = dir / "ws";
    fs::create_directory(ws);
    write_file(ws / "input.txt", "from the host\n");
    // Owned by the workload's uid on the host; keep-id maps 1000 to 1000.
    REQUIRE(::chown(ws.c_str(), 1000, 1000) == 0);
    REQUIRE(::chown((ws / "input.txt").c_str(), 1000, 1000) == 0);

    auto out = sh_output({"--workspace", ws.string(), "--workspace-mode", "bind-rw", "--userns", "keep-id"},
                         "cat /workspace/input.txt && echo written > /workspace/output.txt && "
                         "/checker/nucleus-check cwd");
    CHECK(contains(out, "from the host"));
    CHECK(contains(out, "cwd=/workspace"));  // the default working directory
    REQUIRE(fs::exists(ws / "output.txt"));
    CHECK(read_file(ws / "output.txt") == "written\n");
    CHECK(lstat_of(ws / "output.txt").st_uid == 1000);
}

TEST_CASE("bind-ro workspace: readable but never writable (not even by uid 0)", "[filesystem][workspace]") {
    require_root();
    TempDir dir("ws");
    fs::path ws = dir / "ws";
    fs::create_directory(ws);
    fs::permissions(ws, fs::perms(0777));
    write_file(ws / "input.txt", "data\n");
    for (const char* user : {"1000", "0"}) {
        INFO("--user " << user);
        auto r = run_nucleus(with_checker({"--workspace", ws.string(), "--workspace-mode", "bind-ro", "--user", user}),
                             {"/bin/sh", "-c",
                              "/checker/nucleus-check read /workspace/input.txt; "
                              "/checker/nucleus-check write /workspace/new.txt; "
                              "/checker/nucleus-check write /workspace/input.txt"});
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
        auto lines = split_lines(r.out);
        REQUIRE(lines.size() == 3);
        CHECK(lines[0] == "read=ok");
        CHECK(lines[1] == "write=EROFS");
        CHECK(lines[2] == "write=EROFS");
    }
    CHECK_FALSE(fs::exists(ws / "new.txt"));
    CHECK(read_file(ws / "input.txt") == "data\n");
}

TEST_CASE("copy-in-out workspace: a private copy synced back on exit", "[filesystem][workspace]") {
    require_root();
    TempDir dir("ws");
    fs::path ws = dir / "ws";
    fs::path secret_dir = dir / "secret";
    fs::create_directories(ws);
    fs::create_directories(secret_dir);
    write_file(secret_dir / "secret.txt", "TOPSECRET\n");
    write_file(ws / "data.txt", "original\n");
    write_file(ws / "deleted.txt", "delete me\n");
    install_tool(ws / "suid-tool");
    fs::permissions(ws / "suid-tool", fs::perms(04755));
    // A link to a host file the sandbox must not get a copy of.
    fs::create_symlink(secret_dir / "secret.txt", ws / "secret-link");

    // /peek shows the host directory itself, so the test can tell the copy
    // from the original while the sandbox runs.
    auto out =
        sh_output({"--workspace", ws.string(), "--workspace-mode", "copy-in-out", "-v", ws.string() + ":/peek:ro"},
                  "cat /workspace/data.txt; "
                  "echo changed > /workspace/data.txt; "
                  "echo new > /workspace/created.txt; "
                  "rm /workspace/deleted.txt; "
                  "echo peek=$(cat /peek/data.txt); "
                  "test -e /peek/created.txt && echo peek_created=yes || echo peek_created=no; "
                  "echo suid_inside=$(stat -c %a /workspace/suid-tool); "
                  "echo link_inside=$(readlink /workspace/secret-link); "
                  "cat /workspace/secret-link 2>/dev/null; "
                  "cp /workspace/data.txt /workspace/made-suid && chmod 4755 /workspace/made-suid && "
                  "echo made_suid=$(stat -c %a /workspace/made-suid); "
                  "ln -s /etc/hostname /workspace/new-link");
    auto s = parse_kv(out);
    CHECK(contains(out, "original"));
    // While it runs, the host directory is untouched.
    CHECK(kv(s, "peek") == "original");
    CHECK(kv(s, "peek_created") == "no");
    // Copied in: setuid stripped, symlinks as links (never followed).
    CHECK(kv(s, "suid_inside") == "755");
    CHECK(kv(s, "link_inside") == (secret_dir / "secret.txt").string());
    CHECK_FALSE(contains(out, "TOPSECRET"));
    CHECK(kv(s, "made_suid") == "4755");

    // Synced back on exit: changes, new files, deletions.
    CHECK(read_file(ws / "data.txt") == "changed\n");
    REQUIRE(fs::exists(ws / "created.txt"));
    CHECK(read_file(ws / "created.txt") == "new\n");
    CHECK_FALSE(fs::exists(ws / "deleted.txt"));
    // Owned by the workspace's owner, never by the sandbox's leased ids.
    CHECK(lstat_of(ws / "created.txt").st_uid == lstat_of(ws).st_uid);
    // No setuid bit makes it back to the host.
    REQUIRE(fs::exists(ws / "made-suid"));
    CHECK((lstat_of(ws / "made-suid").st_mode & 07000) == 0);
    CHECK((lstat_of(ws / "suid-tool").st_mode & 07000) == 0);
    // Links stay links, in both directions.
    CHECK(fs::is_symlink(ws / "secret-link"));
    CHECK(fs::read_symlink(ws / "secret-link") == secret_dir / "secret.txt");
    REQUIRE(fs::is_symlink(ws / "new-link"));
    CHECK(fs::read_symlink(ws / "new-link") == fs::path("/etc/hostname"));
    CHECK(read_file(secret_dir / "secret.txt") == "TOPSECRET\n");
}

TEST_CASE("volumes: ro refuses writes and rw writes through and both may hold programs", "[filesystem][volume]") {
    require_root();
    TempDir dir("vol");
    fs::path ro = dir / "ro";
    fs::path rw = dir / "rw";
    fs::create_directories(ro);
    fs::create_directories(rw);
    fs::permissions(rw, fs::perms(0777));
    write_file(ro / "file.txt", "read only\n");
    install_tool(ro / "tool");
    write_file(dir / "single.txt", "single file\n");
    fs::permissions(dir / "single.txt", fs::perms(0644));

    auto r = run_nucleus(with_checker({"-v", ro.string() + ":/ro:ro", "-v", rw.string() + ":/rw:rw", "-v",
                                       (dir / "single.txt").string() + ":/etc/single.txt:ro"}),
                         {"/bin/sh", "-c",
                          "/checker/nucleus-check read /ro/file.txt; "
                          "/checker/nucleus-check write /ro/new; "
                          "/checker/nucleus-check write /rw/new; "
                          "/ro/tool exit 7; echo ro_exec=$?; "
                          "/checker/nucleus-check copyself /rw; "
                          "/rw/nucleus-check-copy exit 9; echo rw_exec=$?; "
                          "cat /etc/single.txt; "
                          "/checker/nucleus-check write /etc/single.txt"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto lines = split_lines(r.out);
    REQUIRE(lines.size() == 8);
    CHECK(lines[0] == "read=ok");
    CHECK(lines[1] == "write=EROFS");
    CHECK(lines[2] == "write=ok");
    CHECK(lines[3] == "ro_exec=7");
    CHECK(lines[4] == "copy=ok");
    CHECK(lines[5] == "rw_exec=9");
    CHECK(lines[6] == "single file");
    CHECK(lines[7] == "write=EROFS");
    CHECK_FALSE(fs::exists(ro / "new"));
    REQUIRE(fs::exists(rw / "new"));
    CHECK(read_file(rw / "new") == "x");
    CHECK(fs::exists(rw / "nucleus-check-copy"));
}

TEST_CASE("context: a read-only noexec copy that is gone afterwards", "[filesystem][context][host-state]") {
    require_root();
    TempDir dir("ctx");
    fs::path ctx = dir / "ctx";
    fs::create_directories(ctx / "sub");
    write_file(ctx / "file.txt", "context data\n");
    write_file(ctx / "sub" / "nested.txt", "nested\n");
    fs::permissions(ctx / "file.txt", fs::perms(0644));
    fs::permissions(ctx / "sub" / "nested.txt", fs::perms(0644));
    install_tool(ctx / "tool");
    auto baseline = settled_leftovers();

    for (const char* user : {"1000", "0"}) {
        INFO("--user " << user);
        fs::path events = dir / (std::string("events-") + user);
        auto r =
            run_nucleus(with_checker({"--context", ctx.string(), "--user", user, "--events-jsonl", events.string()}),
                        {"/bin/sh", "-c",
                         "cat /context/file.txt /context/sub/nested.txt; "
                         "/checker/nucleus-check write /context/new; "
                         "/checker/nucleus-check write /context/file.txt; "
                         "/checker/nucleus-check exec /context/tool"});
        INFO(r.describe());
        REQUIRE(r.exit_code == 0);
        auto lines = split_lines(r.out);
        REQUIRE(lines.size() == 5);
        CHECK(lines[0] == "context data");
        CHECK(lines[1] == "nested");
        CHECK(lines[2] == "write=EROFS");
        CHECK(lines[3] == "write=EROFS");
        CHECK(lines[4] == "exec=EACCES");

        // A copy: the mount's source is a private directory, not ctx itself.
        auto start = find_event(read_events(events), "start");
        REQUIRE(start.is_object());
        std::string context_mount;
        for (const auto& m : start["mounts"])
            if (m.is_string() && m.get<std::string>().rfind("/context ", 0) == 0) context_mount = m;
        INFO("context mount: " << context_mount);
        CHECK(contains(context_mount, "ro"));
        CHECK_FALSE(contains(context_mount, "from " + ctx.string()));
        // ... which is removed with the sandbox.
        CHECK_FALSE(fs::exists(fs::path(default_records()) / start.value("id", std::string("?"))));
    }
    CHECK(read_file(ctx / "file.txt") == "context data\n");
    auto after = wait_for_leftovers(baseline);
    INFO("before: " << baseline.describe() << "\nafter:  " << after.describe());
    CHECK(after == baseline);
}

TEST_CASE("home and /tmp: private and writable and gone with the sandbox", "[filesystem]") {
    require_root();
    std::string marker = "nucleus-it-private-" + std::to_string(::getpid());
    auto first = sh_output(
        {}, "echo one > /tmp/" + marker + " && echo one > $HOME/" + marker + " && /checker/nucleus-check status");
    auto s = parse_kv(first);
    CHECK(kv(s, "home") == "/home/agent");
    CHECK(kv(s, "home_writable") == "1");
    CHECK(kv(s, "home_mode") == "0700");
    CHECK(kv(s, "home_owner") == "1000");
    CHECK(kv(s, "tmp_writable") == "1");
    // Not the host's /tmp ...
    CHECK_FALSE(fs::exists(fs::path("/tmp") / marker));
    // ... and not shared with the next sandbox.
    auto second = sh_output({}, "ls -A /tmp $HOME");
    CHECK_FALSE(contains(second, marker));

    // Another workload uid owns its home.
    auto other = run_checker({"--user", "1234:1234"}, {"status"});
    INFO(other.describe());
    REQUIRE(other.exit_code == 0);
    auto o = parse_kv(other.out);
    CHECK(kv(o, "uid") == "1234");
    CHECK(kv(o, "home_owner") == "1234");
    CHECK(kv(o, "home_writable") == "1");
}

// mountinfo escapes blanks and backslashes in mount points (" " -> "\040");
// mount verification once compared the raw field and refused such targets.
TEST_CASE("a volume target containing a space is usable", "[filesystem][volume]") {
    require_root();
    TempDir dir("vol");
    fs::path src = dir / "src";
    fs::create_directories(src);
    write_file(src / "f.txt", "spaced\n");
    fs::permissions(src / "f.txt", fs::perms(0644));
    auto r = run_nucleus({"-v", src.string() + ":/data dir:ro"}, {"/bin/cat", "/data dir/f.txt"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(r.out == "spaced\n");
    CHECK_FALSE(contains(r.err, "is missing"));
}

// Copy-in skips FIFOs, sockets and devices; sync-back once deleted them from
// the host as if the sandbox had.
TEST_CASE("copy-in-out leaves host FIFOs and sockets it never copied in alone", "[filesystem][workspace]") {
    require_root();
    TempDir dir("ws");
    fs::path ws = dir / "ws";
    fs::create_directories(ws / "sub");
    write_file(ws / "file.txt", "regular\n");
    REQUIRE(::mkfifo((ws / "fifo").c_str(), 0644) == 0);
    REQUIRE(::mkfifo((ws / "sub" / "nested-fifo").c_str(), 0644) == 0);
    // A bound unix socket (the file stays after the descriptor is closed).
    int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(sock >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string sock_path = (ws / "sock").string();
    REQUIRE(sock_path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
    int bound = ::bind(sock, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    ::close(sock);
    REQUIRE(bound == 0);
    auto r = run_nucleus({"--workspace", ws.string(), "--workspace-mode", "copy-in-out"}, {"/bin/true"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(read_file(ws / "file.txt") == "regular\n");
    CHECK(fs::is_fifo(fs::symlink_status(ws / "fifo")));
    CHECK(fs::is_fifo(fs::symlink_status(ws / "sub" / "nested-fifo")));
    CHECK(fs::is_socket(fs::symlink_status(ws / "sock")));
}

// Copy-in once dropped mtimes, so sync-back rewrote every file: host mtimes
// reset and hard links split.
TEST_CASE("copy-in-out does not rewrite files the workload never touched", "[filesystem][workspace]") {
    require_root();
    TempDir dir("ws");
    fs::path ws = dir / "ws";
    fs::create_directories(ws);
    write_file(ws / "old.txt", "untouched\n");
    REQUIRE(::link((ws / "old.txt").c_str(), (ws / "hardlink.txt").c_str()) == 0);
    struct timespec times[2] = {{1577836800, 0}, {1577836800, 0}};  // 2020-01-01
    REQUIRE(::utimensat(AT_FDCWD, (ws / "old.txt").c_str(), times, 0) == 0);
    auto before = lstat_of(ws / "old.txt");
    REQUIRE(before.st_nlink == 2);

    auto r = run_nucleus({"--workspace", ws.string(), "--workspace-mode", "copy-in-out"}, {"/bin/true"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    auto after = lstat_of(ws / "old.txt");
    CHECK(read_file(ws / "old.txt") == "untouched\n");
    CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
    CHECK(after.st_ino == before.st_ino);
    CHECK(after.st_nlink == 2);
}

// The context copy is owned by the workload's host ids (it is mounted
// read-only), so files only their owner could read stay readable.
TEST_CASE("a context file only its owner may read is readable to the workload", "[filesystem][context]") {
    require_root();
    TempDir dir("ctx-private");
    fs::path ctx = dir / "ctx";
    fs::create_directories(ctx / "private");
    write_file(ctx / "private" / "secret.txt", "only mine\n");
    fs::permissions(ctx / "private" / "secret.txt", fs::perms(0600));
    fs::permissions(ctx / "private", fs::perms(0700));
    auto r = run_nucleus({"--context", ctx.string()}, {"/bin/cat", "/context/private/secret.txt"});
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(r.out == "only mine\n");
}
