// Where the runtime keeps per-sandbox state on the host, and how it cleans
// up after a supervisor that died without tearing down.
//
//   <root>/staging            mount point the child assembles its root on
//                             (only ever mounted inside a sandbox's own
//                             mount namespace; stays empty on the host)
//   <root>/ids/slot-N         host id range leases (flock)
//   <root>/sandboxes/<id>.json  one per live sandbox: flock'd by its
//                             supervising process for its life, holding what
//                             to clean (cgroup path). One file, written once,
//                             not fsync'd: it describes processes, which do
//                             not survive a reboot either.
//   <root>/sandboxes/<id>/    private copies made on disk (an unprivileged
//                             caller's copy-in-out workspace), only when asked for
//   <root>/kept/<id>/         a copy-in-out workspace whose sync back failed,
//                             kept for its owner (never removed by gc)
//
// <root> is /run/nucleus for root, else $XDG_RUNTIME_DIR/nucleus or
// /tmp/nucleus-<uid>; NUCLEUS_STATE_DIR overrides it.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/unique_fd.hpp"

namespace nucleus::core {

struct RuntimePaths {
    std::string root;
    std::string staging;
    std::string ids;
    std::string sandboxes;
    std::string kept;
};

Result<RuntimePaths> prepare_runtime_paths();

class SandboxRecord {
public:
    // Creates and locks <id>.json, then writes `record` into it.
    static Result<SandboxRecord> create(const RuntimePaths& paths, const std::string& id, const nlohmann::json& record);
    // Takes over an existing record (the daemon re-adopting a sandbox after
    // a restart): opens and locks it; the private directory is kept if there.
    static Result<SandboxRecord> adopt(const RuntimePaths& paths, const std::string& id);
    // <root>/sandboxes/<id>, created on first use.
    Result<std::string> private_dir();
    // Removes the private directory, then the record; the lock goes last.
    Status remove();

private:
    std::string file_;
    std::string dir_;
    bool dir_made_ = false;
    io::unique_fd lock_;
};

struct CleanupReport {
    int sandboxes = 0;
    std::vector<std::string> errors;
};

// Removes what belonged to supervisors that are gone: their sandbox's
// processes (cgroup.kill), cgroup, private copies and state directory.
CleanupReport collect_stale_sandboxes(const RuntimePaths& paths);

// rm -rf without following symlinks.
Status remove_tree(const std::string& path);

}  // namespace nucleus::core
