#include <catch2/catch_test_macros.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <linux/seccomp.h>

#include "isolation/kernel_abi.hpp"
#include "isolation/launch_plan.hpp"

using namespace nucleus::isolation;

namespace {

LaunchRequest basic_request() {
    LaunchRequest r;
    r.staging_dir = "/stage";
    r.hostname = "box";
    r.hosts_file = "127.0.0.1\tlocalhost\n";
    r.argv = {"python3", "-c", "pass"};
    r.env = {"PATH=/usr/bin:/bin", "HOME=/home/agent"};
    r.maps.uid = {{0, 1000000000, 65536}};
    r.maps.gid = {{0, 1000000000, 65536}};
    r.stdio[0] = 0;
    r.stdio[1] = 1;
    r.stdio[2] = 2;
    return r;
}

const MountOp* find_op(const ChildPlan& c, const std::string& target) {
    for (size_t i = 0; i < c.mount_count; ++i)
        if (target == c.mounts[i].target) return &c.mounts[i];
    return nullptr;
}

}  // namespace

TEST_CASE("a command without a slash is searched in PATH, in order") {
    auto plan = LaunchPlan::build(basic_request());
    REQUIRE(plan);
    const ChildPlan& c = (*plan)->child;
    REQUIRE(c.program.candidate_count == 2);
    CHECK(std::string(c.program.candidates[0]) == "/usr/bin/python3");
    CHECK(std::string(c.program.candidates[1]) == "/bin/python3");
    CHECK(std::string(c.program.argv[0]) == "python3");
    CHECK(c.program.argv[3] == nullptr);
    CHECK(c.program.envp[2] == nullptr);
    CHECK(std::string(c.workdir) == "/home/agent");
}

TEST_CASE("the default root binds system directories read-only and generates /etc") {
    auto plan = LaunchPlan::build(basic_request());
    REQUIRE(plan);
    const ChildPlan& c = (*plan)->child;
    const MountOp* usr = find_op(c, "/stage/usr");
    REQUIRE(usr);
    CHECK(usr->kind == MountKind::Bind);
    const MountOp* passwd = find_op(c, "/stage/etc/passwd");
    REQUIRE(passwd);
    CHECK(passwd->kind == MountKind::WriteFile);
    CHECK(std::string(passwd->data, passwd->data_len).find("agent:x:1000:1000") != std::string::npos);
    CHECK(find_op(c, "/stage/proc"));
    CHECK(find_op(c, "/stage/sys"));  // own network namespace: sysfs allowed
    CHECK(c.setup_uid == 0);
    CHECK(c.uid == 1000);
    CHECK(((*plan)->namespaces & CLONE_NEWNET) != 0);
}

TEST_CASE("host networking drops the network namespace and /sys") {
    auto req = basic_request();
    req.new_network_namespace = false;
    auto plan = LaunchPlan::build(req);
    REQUIRE(plan);
    CHECK(((*plan)->namespaces & CLONE_NEWNET) == 0);
    CHECK_FALSE(find_op((*plan)->child, "/stage/sys"));
    CHECK_FALSE((*plan)->child.bring_up_loopback);
}

TEST_CASE("a rootfs is mirrored entry by entry, reserved names skipped") {
    auto dir = std::filesystem::temp_directory_path() / ("nucleus-rootfs-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir / "bin");
    std::filesystem::create_directories(dir / "proc");
    std::filesystem::create_symlink("bin", dir / "sbin");
    std::ofstream(dir / "marker") << "x";
    auto req = basic_request();
    req.rootfs = dir.string();
    auto plan = LaunchPlan::build(req);
    REQUIRE(plan);
    const ChildPlan& c = (*plan)->child;
    const MountOp* bin = find_op(c, "/stage/bin");
    REQUIRE(bin);
    CHECK(std::string(bin->source) == (dir / "bin").string());
    const MountOp* sbin = find_op(c, "/stage/sbin");
    REQUIRE(sbin);
    CHECK(sbin->kind == MountKind::Symlink);
    CHECK(std::string(sbin->source) == "bin");
    const MountOp* marker = find_op(c, "/stage/marker");
    REQUIRE(marker);
    CHECK(marker->target_is_file);
    // /proc comes from the runtime, never from the rootfs.
    const MountOp* proc = find_op(c, "/stage/proc");
    REQUIRE(proc);
    CHECK(proc->kind == MountKind::Proc);
    std::filesystem::remove_all(dir);
}

TEST_CASE("the workspace is noexec unless asked, and its flags are verified") {
    auto req = basic_request();
    req.workspace = BindRequest{"/tmp", "/workspace", true, false};
    auto plan = LaunchPlan::build(req);
    REQUIRE(plan);
    bool found = false;
    for (const auto& e : (*plan)->expectations) {
        if (e.path != "/workspace") continue;
        found = true;
        CHECK(e.noexec);
        CHECK_FALSE(e.read_only);
        CHECK(e.nosuid);
    }
    CHECK(found);
    CHECK(std::string((*plan)->child.workdir) == "/workspace");
}

TEST_CASE("a missing bind source is an error before any clone") {
    auto req = basic_request();
    req.volumes.push_back({"/nonexistent/nucleus", "/data", true, true});
    auto plan = LaunchPlan::build(req);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().message.find("volume source /nonexistent/nucleus") != std::string::npos);
}

TEST_CASE("only the built-in seccomp filter is loaded before the Ready report") {
    // The child's handshake write and read happen after it: the built-in
    // allowlist allows both, a profile from a user might not.
    auto built_in = LaunchPlan::build(basic_request());
    REQUIRE(built_in);
    CHECK((*built_in)->child.seccomp_filter != nullptr);
    CHECK((*built_in)->child.seccomp_before_ready);

    LaunchRequest custom = basic_request();
    custom.seccomp_filter = std::vector<sock_filter>{BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    auto profile = LaunchPlan::build(custom);
    REQUIRE(profile);
    CHECK((*profile)->child.seccomp_len == 1);
    CHECK_FALSE((*profile)->child.seccomp_before_ready);

    LaunchRequest none = basic_request();
    none.seccomp = false;
    auto without = LaunchPlan::build(none);
    REQUIRE(without);
    CHECK((*without)->child.seccomp_filter == nullptr);
    CHECK_FALSE((*without)->child.seccomp_before_ready);
}

TEST_CASE("every mount under /dev is made nosuid and noexec by one recursive call after the last") {
    auto plan = LaunchPlan::build(basic_request());
    REQUIRE(plan);
    const ChildPlan& c = (*plan)->child;
    const MountOp* null_node = find_op(c, "/stage/dev/null");
    REQUIRE(null_node);
    CHECK(null_node->attr_set == 0);
    size_t last_under_dev = 0, set_attr = 0;
    for (size_t i = 0; i < c.mount_count; ++i) {
        std::string target = c.mounts[i].target;
        if (target.starts_with("/stage/dev/") && c.mounts[i].kind != MountKind::Symlink) last_under_dev = i;
        if (c.mounts[i].kind == MountKind::SetAttr && target == "/stage/dev") set_attr = i;
    }
    REQUIRE(set_attr > 0);
    CHECK(set_attr > last_under_dev);
    CHECK(c.mounts[set_attr].recursive);
    CHECK(c.mounts[set_attr].attr_set == (nucleus::kabi::mount_attr_nosuid | nucleus::kabi::mount_attr_noexec));
}
