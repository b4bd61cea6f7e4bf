// Where the runtime keeps per-sandbox state on the host, and how it cleans
// up after a supervisor that died without tearing down.
//
//   <root>/staging            mount point the child assembles its root on
//                             (only ever mounted inside a sandbox's own
//                             mount namespace; stays empty on the host)
//   <root>/ids/slot-N         host id range leases (flock)
//   <root>/sandboxes/<id>/    one per live sandbox:
//       owner.lock            flock'd by the supervising process for its life
//       record.json           what to clean: cgroup path, private copies
//       workspace/, context/  private copies (copy-in-out, --context)
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
};

Result<RuntimePaths> prepare_runtime_paths();

class SandboxRecord {
public:
    static Result<SandboxRecord> create(const RuntimePaths& paths, const std::string& id);
    const std::string& dir() const { return dir_; }
    // Atomic: written to a temporary file, fsync'd, renamed over record.json.
    Status write(const nlohmann::json& record) const;
    // Removes the directory and everything in it; the lock goes last.
    Status remove();

private:
    std::string dir_;
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
