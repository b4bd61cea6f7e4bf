// Isolation as the workload sees it: nucleus-check `status` and `syscalls`
// in the default root and in a busybox rootfs, with and without a network
// namespace, plus the start event's account of what was applied.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include "harness.hpp"

using namespace nit;

namespace {

const std::string kNoCaps = "0000000000000000";

// Host interfaces as /proc/net/dev lists them, sorted and comma-joined (the
// checker's netns_ifaces format).
std::string host_interfaces() {
    std::vector<std::string> names;
    auto lines = split_lines(read_file("/proc/net/dev"));
    for (size_t i = 2; i < lines.size(); ++i) {
        size_t colon = lines[i].find(':');
        size_t first = lines[i].find_first_not_of(' ');
        if (colon != std::string::npos && first < colon) names.push_back(lines[i].substr(first, colon - first));
    }
    std::sort(names.begin(), names.end());
    std::string joined;
    for (const auto& n : names) {
        if (!joined.empty()) joined += ',';
        joined += n;
    }
    return joined;
}

std::set<std::string> split_set(const std::string& text, char sep) {
    std::set<std::string> out;
    std::istringstream in(text);
    for (std::string item; std::getline(in, item, sep);)
        if (!item.empty()) out.insert(item);
    return out;
}

bool has_namespace(const nlohmann::json& start, const std::string& ns) {
    if (!start.contains("namespaces") || !start["namespaces"].is_array()) return false;
    for (const auto& n : start["namespaces"])
        if (n == ns) return true;
    return false;
}

// What every sandbox must show from the inside, whatever its root.
void check_common_isolation(const std::map<std::string, std::string>& s) {
    // Identity: the default workload user, PID 1 of its own PID namespace.
    CHECK(kv(s, "pid") == "1");
    CHECK(kv(s, "uid") == "1000");
    CHECK(kv(s, "gid") == "1000");
    CHECK(kv(s, "euid") == "1000");
    CHECK(kv(s, "egid") == "1000");
    CHECK(kv(s, "groups") == "0");
    CHECK(kv(s, "proc_pids") == "1");
    // No capabilities of any kind, no way to gain any.
    for (const char* key : {"cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"}) {
        INFO(key);
        CHECK(kv(s, key) == kNoCaps);
    }
    CHECK(kv(s, "no_new_privs") == "1");
    CHECK(kv(s, "seccomp") == "2");
    // A leased host range: container 0-65535 -> 1000000000 + slot*65536.
    auto base = map_base(kv(s, "uid_map"));
    REQUIRE(base.has_value());
    CHECK(*base >= kLeaseBase);
    CHECK((*base - kLeaseBase) % kLeaseSize == 0);
    CHECK(kv(s, "uid_map") == "0 " + std::to_string(*base) + " 65536");
    CHECK(kv(s, "gid_map") == kv(s, "uid_map"));
    // Read-only root, private writable /tmp and home.
    CHECK(kv(s, "root_writable") == "0");
    CHECK(kv(s, "root_write_errno") == "EROFS");
    CHECK(kv(s, "tmp_writable") == "1");
    CHECK(kv(s, "home") == "/home/agent");
    CHECK(kv(s, "home_writable") == "1");
    CHECK(kv(s, "home_mode") == "0700");
    CHECK(kv(s, "home_owner") == "1000");
    // OCI masked and read-only paths.
    for (const auto& [key, value] : s) {
        if (key.rfind("masked:", 0) == 0) {
            INFO(key << "=" << value);
            CHECK((value == "absent" || value == "empty"));
        }
        if (key.rfind("readonly:", 0) == 0) {
            INFO(key << "=" << value);
            CHECK((value == "1" || value == "absent"));
        }
    }
    // A minimal /dev: the usual character devices, no disks, no /dev/mem.
    auto dev = split_set(kv(s, "dev_entries"), ',');
    for (const char* needed : {"null", "zero", "full", "random", "urandom", "tty"}) {
        INFO("/dev/" << needed);
        CHECK(dev.count(needed) == 1);
    }
    const std::set<std::string> allowed = {"core", "fd",     "full",  "mqueue", "null", "ptmx",    "pts", "random",
                                           "shm",  "stderr", "stdin", "stdout", "tty",  "urandom", "zero"};
    for (const auto& entry : dev) {
        INFO("unexpected /dev/" << entry);
        CHECK(allowed.count(entry) == 1);
    }
    // Landlock is available on this kernel and visible from inside.
    CHECK(kv(s, "landlock_abi").rfind("error:", 0) == std::string::npos);
    CHECK(kv(s, "landlock_abi") != "<missing>");
}

}  // namespace

TEST_CASE("busybox rootfs: the same isolation and nothing of the host's root", "[isolation]") {
    require_root();
    require_busybox();
    BusyboxRootfs rootfs;
    auto r = run_checker({"--rootfs", rootfs.str()}, {"status"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto s = parse_kv(r.out);
    check_common_isolation(s);
    CHECK(kv(s, "netns_ifaces") == "lo");
    CHECK(kv(s, "sys") == "ro");

    // The root is the rootfs's top-level entries plus the runtime's mounts.
    auto ls = run_nucleus(with_checker({"--rootfs", rootfs.str()}), {"/bin/ls", "/"});
    INFO(ls.describe());
    REQUIRE(ls.exit_code == 0);
    auto entries = split_set(ls.out, '\n');
    for (const char* present : {"bin", "etc", "dev", "proc", "tmp", "home", "checker"}) {
        INFO("/" << present);
        CHECK(entries.count(present) == 1);
    }
    for (const char* absent : {"usr", "lib", "lib64", "sbin", "root", "var", "boot", "work"}) {
        INFO("/" << absent << " must not leak from the host");
        CHECK(entries.count(absent) == 0);
    }
    // The rootfs's own /etc/passwd, read-only.
    auto passwd = run_nucleus({"--rootfs", rootfs.str()}, {"/bin/cat", "/etc/passwd"});
    CHECK(passwd.exit_code == 0);
    CHECK(passwd.out == read_file(rootfs.path() / "etc/passwd"));
    auto write = run_checker({"--rootfs", rootfs.str()}, {"write", "/bin/new"});
    CHECK(parse_kv(write.out)["write"] == "EROFS");
}

TEST_CASE("uid 0 inside the sandbox holds no capability and no host privilege", "[isolation]") {
    require_root();
    auto r = run_checker({"--user", "0:0"}, {"status"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto s = parse_kv(r.out);
    CHECK(kv(s, "uid") == "0");
    CHECK(kv(s, "gid") == "0");
    for (const char* key : {"cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"}) {
        INFO(key);
        CHECK(kv(s, key) == kNoCaps);
    }
    CHECK(kv(s, "no_new_privs") == "1");
    CHECK(kv(s, "seccomp") == "2");
    // Container root is a leased host id, never host root.
    auto base = map_base(kv(s, "uid_map"));
    REQUIRE(base.has_value());
    CHECK(*base >= kLeaseBase);
    CHECK(kv(s, "root_write_errno") == "EROFS");
}

TEST_CASE("network host: the host's interfaces with no network namespace and no /sys", "[isolation][network]") {
    require_root();
    TempDir dir("net");
    auto r = run_checker({"--network", "host", "--events-jsonl", (dir / "events").string()}, {"status"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto s = parse_kv(r.out);
    CHECK(kv(s, "netns_ifaces") == host_interfaces());
    CHECK(kv(s, "sys") == "absent");
    // Everything else stays isolated.
    CHECK(kv(s, "uid") == "1000");
    CHECK(kv(s, "cap_eff") == kNoCaps);
    CHECK(kv(s, "seccomp") == "2");
    CHECK(kv(s, "proc_pids") == "1");
    CHECK(kv(s, "root_write_errno") == "EROFS");
    auto start = find_event(read_events(dir / "events"), "start");
    REQUIRE(start.is_object());
    CHECK(start.value("network", "") == "host");
    CHECK_FALSE(has_namespace(start, "network"));
    CHECK(has_namespace(start, "user"));
}

TEST_CASE("time namespace: adds a time namespace and changes nothing else", "[isolation]") {
    require_root();
    TempDir dir("time");
    auto r = run_checker({"--time-namespace", "--events-jsonl", (dir / "events").string()}, {"status"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    check_common_isolation(parse_kv(r.out));
    auto start = find_event(read_events(dir / "events"), "start");
    REQUIRE(start.is_object());
    CHECK(has_namespace(start, "time"));
    auto without = run_checker({"--events-jsonl", (dir / "events2").string()}, {"exit", "0"});
    REQUIRE(without.exit_code == 0);
    CHECK_FALSE(has_namespace(find_event(read_events(dir / "events2"), "start"), "time"));
}

TEST_CASE("cap-add keeps exactly the capability asked for", "[isolation]") {
    require_root();
    auto r = run_checker({"--cap-add", "NET_BIND_SERVICE"}, {"status"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto s = parse_kv(r.out);
    const std::string net_bind_service = "0000000000000400";  // bit 10
    for (const char* key : {"cap_prm", "cap_eff", "cap_bnd", "cap_amb"}) {
        INFO(key);
        CHECK(kv(s, key) == net_bind_service);
    }
    CHECK(kv(s, "no_new_privs") == "1");
    CHECK(kv(s, "seccomp") == "2");
}

TEST_CASE("userns keep-id maps the workload's uid to the same host uid only", "[isolation]") {
    require_root();
    auto r = run_checker({"--userns", "keep-id"}, {"status"});
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    auto s = parse_kv(r.out);
    auto map = kv(s, "uid_map");
    CHECK(contains(map, "1000 1000 1"));
    auto base = map_base(map);
    REQUIRE(base.has_value());
    CHECK(*base >= kLeaseBase);  // everything else still comes from the lease
    CHECK(kv(s, "cap_eff") == kNoCaps);
}

TEST_CASE("two sandboxes at once: different id ranges and neither sees the other", "[isolation]") {
    require_root();
    TempDir dir("two");
    auto first = Process::start(
        nucleus_argv(with_checker({"--events-jsonl", (dir / "events").string()}), {kChecker, "sleep", "30"}));
    auto start = wait_for_start_event(dir / "events", first);
    REQUIRE(start.is_object());
    auto first_base = map_base(start["user"].value("uid_map", ""));
    REQUIRE(first_base.has_value());

    auto second = run_checker({}, {"status"});
    INFO(second.describe());
    REQUIRE(second.exit_code == 0);
    auto s = parse_kv(second.out);
    auto second_base = map_base(kv(s, "uid_map"));
    REQUIRE(second_base.has_value());
    CHECK(*first_base != *second_base);
    CHECK(kv(s, "proc_pids") == "1");
    CHECK(kv(s, "hostname") != start.value("id", std::string()).substr(0, 12));

    first.signal(SIGTERM);
    auto r = first.wait();
    CHECK(r.exit_code == 143);
}
