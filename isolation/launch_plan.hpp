// Parent side: a LaunchRequest (what the sandbox should be, already
// validated by core/) becomes a LaunchPlan (exactly what the child does).
//
// Everything that allocates, reads the host or can fail for a non-kernel
// reason happens here, before clone: resolving system directories and
// symlinks, the rootfs listing, generated /etc files, Landlock rules and
// ruleset, the seccomp program, exec candidates, argv/envp arrays.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "isolation/child_plan.hpp"
#include "isolation/closure_root.hpp"
#include "isolation/idmap.hpp"
#include "isolation/landlock.hpp"
#include "isolation/seccomp.hpp"

namespace nucleus::isolation {

struct BindRequest {
    std::string source;  // host path
    std::string target;  // absolute path in the sandbox
    bool writable = false;
    bool exec = false;
    // A detached mount (isolation/detached_mount.hpp) attached at target
    // instead of binding `source`, which then only names it in summaries.
    // Owned by the caller; open until the child has set up.
    int mount_fd = -1;
};

struct LaunchRequest {
    std::string staging_dir;  // host directory the root is assembled on
    std::optional<std::string> rootfs;  // nullopt: the host's system directories
    std::optional<ClosureRoot> closure;  // a Nix store closure as the root (isolation/closure_root.hpp)
    bool new_network_namespace = true;
    bool time_namespace = false;
    bool die_with_supervisor = true;  // PR_SET_PDEATHSIG(SIGKILL) in the child
    std::string hostname;
    std::string hosts_file;  // /etc/hosts for the default root (net/)
    std::string resolv_conf;  // generated /etc/resolv.conf (default root); empty: the host's
    // Set-up of the sandbox's own network namespace, applied by the child
    // (isolation/child_net.hpp): netlink messages, then listening sockets
    // sent back on `network_channel_fd` (borrowed; the caller keeps it open).
    std::vector<NetlinkScript> netlink_scripts;
    std::vector<ListenSocket> listen_sockets;
    int network_channel_fd = -1;
    uint32_t uid = 1000;
    uint32_t gid = 1000;
    std::string user_name = "agent";
    std::string home = "/home/agent";
    UserNamespaceMaps maps;
    std::optional<BindRequest> workspace;  // target /workspace
    std::vector<BindRequest> volumes;
    std::optional<std::string> context_dir;  // a private copy, bound read-only at /context
    int context_mount_fd = -1;  // or a detached mount holding it (see BindRequest)
    bool context_exec = false;
    std::string workdir;  // empty: /workspace if any, else home
    std::vector<std::string> argv;
    std::vector<std::string> env;  // KEY=VALUE, final
    std::vector<RlimitSetting> rlimits;
    uint64_t caps_keep = 0;
    std::optional<uint64_t> caps_bounding;  // nullopt: the same as caps_keep
    std::optional<uint64_t> tmpfs_size;  // size= for /tmp and home
    // A Landlock policy's rules replace the default ones (path, access bits).
    std::optional<std::vector<std::pair<std::string, uint64_t>>> landlock_rules;
    int landlock_min_abi = 1;
    // A compiled profile replaces the built-in filter.
    std::optional<std::vector<sock_filter>> seccomp_filter;
    unsigned seccomp_flags = 0;
    struct Secret {
        std::string name;  // file name under /run/secrets
        std::string content;  // wiped by LaunchPlan::wipe_secrets()
    };
    std::vector<Secret> secrets;
    bool landlock = true;
    bool seccomp = true;
    int stdio[3] = {-1, -1, -1};  // borrowed; the caller keeps them open
};

// A flag promise the parent checks in the child's mountinfo before exec.
struct MountExpectation {
    std::string path;  // inside the sandbox
    bool read_only = false;
    bool nosuid = false;
    bool nodev = false;
    bool noexec = false;
};

struct LandlockStatus {
    bool enforced = false;
    int abi = 0;
    bool scoped = false;
    std::string reason;  // why it is not enforced
};

class LaunchPlan {
public:
    static Result<std::unique_ptr<LaunchPlan>> build(const LaunchRequest& request);

    ChildPlan child;
    uint64_t namespaces = 0;  // CLONE_NEW*
    UserNamespaceMaps maps;
    std::vector<MountExpectation> expectations;
    std::vector<std::string> mount_summary;  // "TARGET (flags)" for events
    LandlockStatus landlock;
    size_t seccomp_instructions = 0;
    std::string seccomp_digest;

    // Zeroes the plan's copies of secret contents; called once the child has
    // exec'd (or died), when nothing reads them any more.
    void wipe_secrets();
    // Frees what only the sandbox's own setup read (the mount script, the
    // flag expectations checked before exec, the summary for the start
    // record); what a later exec joins under (identity, seccomp, Landlock,
    // rlimits, environment) stays. Called once the start record is out.
    void release_setup();

private:
    LaunchPlan() = default;
    friend class PlanBuilder;

    std::deque<std::string> strings_;  // stable storage for every char* in child
    std::vector<MountOp> mounts_;
    std::vector<LandlockRule> landlock_rules_;
    std::vector<const char*> exec_candidates_;
    std::vector<char*> argv_;
    std::vector<char*> envp_;
    std::vector<gid_t> groups_;
    std::vector<RlimitSetting> rlimits_;
    std::optional<LandlockRuleset> ruleset_;
    std::vector<sock_filter> seccomp_filter_;
    std::vector<std::string*> secret_buffers_;
    std::vector<NetlinkScript> netlink_scripts_;
    std::vector<ListenSocket> listen_sockets_;
    ChildNetwork network_;
};

// Why a volume cannot be mounted at `target` (absolute, normalised) in the
// root that a request with this rootfs (none: the default agent root) gets:
// on, inside or over one of its read-only entries (/usr, /bin -> usr/bin,
// /nix/store, the provided /etc files, the rootfs's top-level entries).
// nullopt when the target is free.
std::optional<std::string> root_conflict(const std::optional<std::string>& rootfs, const std::string& target);

// Checks /proc/PID/mountinfo (the child's view) against the expectations.
Status verify_mounts(const std::string& mountinfo, const std::vector<MountExpectation>& expectations);
Status verify_child(pid_t pid, const LaunchPlan& plan);

}  // namespace nucleus::isolation
