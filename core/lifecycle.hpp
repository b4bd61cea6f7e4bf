// One sandbox's lifecycle, shared by `nucleus run` (one sandbox, then exit)
// and `nucleus daemon` (thousands on one reactor):
//
//   admit      mode rules and integrity checks, before anything exists
//   prepare    ids, state record, cgroup, copies, launch plan (blocking)
//   spawn_and_supervise   clone3, handshake, supervision (on the reactor)
//   teardown   copy-out, state record removal; cleanup summary
//
// Errors are carried in the Outcome; nothing here prints except report_*.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "core/events.hpp"
#include "core/network_setup.hpp"
#include "core/run.hpp"
#include "core/sandbox_network.hpp"
#include "core/spec.hpp"
#include "core/state.hpp"
#include "core/supervise.hpp"
#include "core/workspace.hpp"
#include "io/unique_fd.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/idmap.hpp"
#include "isolation/launch_plan.hpp"
#include "isolation/seccomp_trace.hpp"

namespace nucleus::core::lifecycle {

using nlohmann::json;

void report_error(const std::string& text);
void report_warning(const std::string& text);

// 32 hex digits from getrandom(2).
std::string random_id();

// Everything prepared for one sandbox, owned for its lifetime.
struct Sandbox {
    std::string id;
    std::string name;
    std::string hostname;
    RuntimePaths paths;
    SandboxRecord record;  // empty until prepare() creates it
    std::optional<isolation::IdRangeLease> lease;
    isolation::UserNamespaceMaps maps;
    std::optional<isolation::SandboxCgroup> cgroup;
    // Private copies (copy-in-out workspace, context). As root, each lives
    // on a detached tmpfs the child attaches (isolation/detached_mount.hpp);
    // unprivileged, in a directory under the private dir. The root fds are
    // how the copy is reached, also after the sandbox is gone.
    struct Copy {
        std::string path;  // on-disk copy, or a description of the tmpfs
        io::unique_fd mount;  // the detached tmpfs, when there is one
        io::unique_fd root;  // the copy's root directory
        Manifest given;  // what copy-in gave the sandbox
    };
    std::optional<Copy> workspace_copy;
    std::optional<Copy> context_copy;
    std::vector<std::string> degraded;
    std::vector<std::string> notes;  // events only
    isolation::CgroupLimits applied_limits;
    json record_json;
    bool record_written = false;
    // The daemon's sandboxes outlive a killed daemon (to be re-adopted);
    // `nucleus run`'s die with their supervisor (PR_SET_PDEATHSIG).
    bool die_with_supervisor = true;
    // Extra fields for the state record (the daemon's own bookkeeping).
    json record_extra = json::object();
    NetworkSetup network;  // --network egress: the sockets' way back from the child
    std::optional<SandboxNetwork> bridge;  // --network bridge (core/sandbox_network.hpp)
};

// Output destinations.
struct Sinks {
    std::optional<io::OutputSink> out;
    std::optional<io::OutputSink> err;
};

// A copy-in-out workspace that could not be synced back completely: the run
// fails with this code whatever the workload's own, and the sandbox's copy
// is kept (its path in the message and the final event).
constexpr int exit_sync_failed = 122;

struct Outcome {
    int exit_code = exit_runtime_error;
    std::string reason;  // exit, signal, timeout, setup_failed, not_found, cannot_execute
    std::optional<int> signal;
    std::string error;  // for runtime failures
    std::optional<SupervisionResult> supervision;
    Status cgroup_removed;
    double wall_ms = 0;
    std::optional<isolation::CgroupStats> stats;  // read before removal
    std::optional<isolation::CgroupEventCounts> counts;
    json egress;  // --network egress: the decisions' counters (EgressStats)
};

struct RunContext {
    isolation::SyscallTrace* trace;  // trace mode only
    const SandboxSpec* spec;
    Sandbox* sb;
    isolation::LaunchPlan* plan;
    EventLog* events;
    io::PipePair* out_pipe;
    io::PipePair* err_pipe;
    Sinks* sinks;
    bool forward_signals = true;  // SIGINT/SIGTERM/SIGHUP to the sandbox (`run` only)
    bool shared_pump_buffer = false;  // one read buffer for every sandbox (daemon)
    // Called once the workload is running (after exec), with its host pid.
    std::function<void(const io::ProcessHandle&)> on_started;
    // --network egress: a resolver shared by every sandbox (the daemon's);
    // null: each sandbox's service makes its own.
    std::shared_ptr<net::UpstreamResolver> resolver;
};

// The mode's rules and --verify-* integrity checks; audited.
Status admit(const SandboxSpec& spec, EventLog& audit);

// Everything up to the reactor: ids, cgroup, copies, plan. On failure,
// whatever was made so far is undone by teardown().
Result<std::unique_ptr<isolation::LaunchPlan>> prepare(const SandboxSpec& spec, Sandbox& sb, io::PipePair& out,
                                                       io::PipePair& err, int devnull);

// --log-dir files, or our own stdout/stderr.
Result<Sinks> open_sinks(asio::any_io_executor ex, const SandboxSpec& spec, const Sandbox& sb);

asio::awaitable<Outcome> spawn_and_supervise(RunContext ctx);

json request_audit(const SandboxSpec& spec);
json applied_audit(const SandboxSpec& spec, const Sandbox& sb, const isolation::LaunchPlan& plan);
void record_trace(const SandboxSpec& spec, const isolation::SyscallTrace& trace, EventLog& audit);
json stats_json(const isolation::CgroupStats& s);
json counts_json(const isolation::CgroupEventCounts& c);

// Syncs a copy-in-out workspace back to the host; on failure the copy is
// kept under RuntimePaths::kept and named.
struct SyncResult {
    bool complete = false;
    std::vector<std::string> conflicts;  // "path: why", or the error that stopped the sync
    std::string summary;
    std::string kept;  // where the copy is kept, if it could be
};
SyncResult sync_workspace(const SandboxSpec& spec, Sandbox& sb);

// Removes what prepare() made and is still there (cgroup if the reactor
// never ran, workspace copy-out, the state record). Returns the cleanup
// summary for the final event; warnings are reported unless `quiet`.
json teardown(const SandboxSpec& spec, Sandbox& sb, Outcome& outcome, bool quiet = false);

// Daemon recovery: a running sandbox's network lease, taken again from its
// state record (a warning is reported if that fails).
void readopt_bridge(const SandboxSpec& spec, Sandbox& sb);

// The start event: ids, namespaces, network, mounts, identity, layers
// (core/lifecycle_records.cpp, as the other records).
json start_record(const Sandbox& sb, const isolation::LaunchPlan& plan, pid_t pid, const SandboxSpec& spec);

// The final event: exit code or signal, reason, times, cleanup.
json final_record(const Sandbox& sb, const Outcome& outcome, const json& cleanup);

}  // namespace nucleus::core::lifecycle
