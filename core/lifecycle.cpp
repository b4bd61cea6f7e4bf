// One sandbox's lifecycle, shared by `nucleus run` and `nucleus daemon`:
// prepare (plain blocking code), spawn and supervise (on the reactor), tear
// down, report.
#include "core/lifecycle.hpp"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <sstream>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>

#include "core/attestation.hpp"
#include "core/closure_gcroot.hpp"
#include "core/closure_spec.hpp"
#include "core/events.hpp"
#include "core/log.hpp"
#include "core/modes.hpp"
#include "core/state.hpp"
#include "core/supervise.hpp"
#include "core/workspace.hpp"
#include "io/bytes_json.hpp"
#include "io/reactor.hpp"
#include "isolation/capabilities.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/detached_mount.hpp"
#include "isolation/launch_plan.hpp"
#include "isolation/spawn.hpp"

namespace nucleus::core::lifecycle {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The daemon's log once it is configured (core/log.hpp); else plain lines.
void report_error(const std::string& text) {
    if (log::configured()) log::error(text);
    else std::fprintf(stderr, "nucleus: error: %s\n", text.c_str());
}
void report_warning(const std::string& text) {
    if (log::configured()) log::warning(text);
    else std::fprintf(stderr, "nucleus: warning: %s\n", text.c_str());
}

std::string random_id() {
    unsigned char bytes[16];
    if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) {
        // getrandom(2) does not fail for 16 bytes once the pool is ready;
        // fall back on time and pid rather than refuse to run.
        auto now = Clock::now().time_since_epoch().count();
        for (size_t i = 0; i < sizeof bytes; ++i)
            bytes[i] = static_cast<unsigned char>((now >> (i % 8 * 8)) ^ ::getpid() ^ i);
    }
    char out[33];
    for (size_t i = 0; i < sizeof bytes; ++i) std::snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return out;
}

// The login name for `uid` from /etc/passwd (no NSS in a static binary;
// /etc/subuid names local users anyway).
std::string user_name(uid_t uid) {
    auto passwd = io::read_file("/etc/passwd", 4 << 20);
    if (!passwd) return std::to_string(uid);
    std::istringstream lines(*passwd);
    std::string line;
    const std::string id = ":" + std::to_string(uid) + ":";
    while (std::getline(lines, line)) {
        auto first = line.find(':');
        if (first == std::string::npos) continue;
        auto second = line.find(':', first + 1);
        if (second != std::string::npos && line.compare(second, id.size(), id) == 0) return line.substr(0, first);
    }
    return std::to_string(uid);
}

// Container ids 0..N-1 from a subordinate range, except `keep`, which maps
// to `self`.
std::vector<isolation::IdMapping> around(uint32_t keep, uint32_t self, isolation::SubordinateRange range) {
    uint32_t count = std::min(range.count, isolation::id_range_size);
    std::vector<isolation::IdMapping> m;
    if (keep >= count) return {{keep, self, 1}};
    if (keep > 0) m.push_back({0, range.start, keep});
    m.push_back({keep, self, 1});
    if (keep + 1 < count) m.push_back({keep + 1, range.start + keep, count - keep - 1});
    return m;
}

// Container ids -> host ids. As root: a leased range, with the workload's
// uid mapped to itself for --userns keep-id. Unprivileged: the workload's
// uid is the caller's (the kernel allows exactly that one mapping without
// a helper), so files in a bind-mounted workspace stay the caller's.
Result<isolation::UserNamespaceMaps> build_maps(const SandboxSpec& spec, Sandbox& sb) {
    using isolation::IdMapping;
    isolation::UserNamespaceMaps maps;
    if (::geteuid() == 0) {
        auto lease = isolation::lease_id_range(sb.paths.ids);
        if (!lease) return std::move(lease).error();
        uint32_t base = lease->base();
        sb.lease = std::move(*lease);
        auto ranges = [&](uint32_t keep) {
            if (spec.userns != UsernsMode::KeepId) return std::vector<IdMapping>{{0, base, isolation::id_range_size}};
            std::vector<IdMapping> m;
            if (keep > 0) m.push_back({0, base, keep});
            m.push_back({keep, keep, 1});
            if (keep + 1 < isolation::id_range_size)
                m.push_back({keep + 1, base + keep + 1, isolation::id_range_size - keep - 1});
            return m;
        };
        maps.method = isolation::UserNamespaceMaps::Method::Direct;
        maps.uid = ranges(spec.uid);
        maps.gid = ranges(spec.gid);
        return maps;
    }
    maps.method = isolation::UserNamespaceMaps::Method::DirectDenySetgroups;
    maps.uid = {{spec.uid, static_cast<uint32_t>(::geteuid()), 1}};
    maps.gid = {{spec.gid, static_cast<uint32_t>(::getegid()), 1}};
    // With a subordinate range and the setuid helpers, map the whole
    // container range: the workload's ids stay the caller's, the rest come
    // from /etc/subuid and /etc/subgid (newuidmap(1)).
    auto user = user_name(::geteuid());
    auto sub_uid = isolation::find_subordinate_range("/etc/subuid", user, ::geteuid());
    auto sub_gid = isolation::find_subordinate_range("/etc/subgid", user, ::getegid());
    if (sub_uid && sub_gid && ::access("/usr/bin/newuidmap", X_OK) == 0 && ::access("/usr/bin/newgidmap", X_OK) == 0) {
        maps.method = isolation::UserNamespaceMaps::Method::Helper;
        maps.uid = around(spec.uid, static_cast<uint32_t>(::geteuid()), *sub_uid);
        maps.gid = around(spec.gid, static_cast<uint32_t>(::getegid()), *sub_gid);
    }
    return maps;
}

// Creates the flock'd state record (once), naming the cgroup to clean up.
Status write_record(Sandbox& sb, const std::string& cgroup_path) {
    sb.record_json = {{"id", sb.id},
                      {"name", sb.name},
                      {"supervisor", ::getpid()},
                      {"cgroup", cgroup_path.empty() ? json(nullptr) : json(cgroup_path)}};
    for (const auto& [key, value] : sb.record_extra.items()) sb.record_json[key] = value;
    auto record = SandboxRecord::create(sb.paths, sb.id, sb.record_json);
    if (!record) return std::move(record).error().wrap("recording the sandbox");
    sb.record = std::move(*record);
    sb.record_written = true;
    return {};
}

// Drops the limits whose controller the host cannot give us. Requested
// ones are reported as degraded (agent mode); the default pids limit only
// shows in the events.
isolation::CgroupLimits usable_limits(const SandboxSpec& spec, const std::vector<std::string>& available,
                                      const std::string& where, Sandbox& sb) {
    isolation::CgroupLimits limits = spec.limits;
    auto missing = [&](const char* c) { return std::find(available.begin(), available.end(), c) == available.end(); };
    auto requested = [&](const char* flag) {
        return std::find(spec.requested_limits.begin(), spec.requested_limits.end(), flag) !=
               spec.requested_limits.end();
    };
    auto drop = [&](const char* controller, std::initializer_list<const char*> flags) {
        if (!missing(controller)) return;
        std::string given;
        for (const char* f : flags)
            if (requested(f)) given += (given.empty() ? "--" : ", --") + std::string(f);
        std::replace(given.begin(), given.end(), '_', '-');
        if (!given.empty())
            sb.degraded.push_back(std::string(controller) + " controller unavailable in " + where + ": " + given +
                                  " not applied");
        else if (std::string(controller) == "pids" && limits.pids_max)
            sb.notes.push_back("pids controller unavailable in " + where + ": default pids limit not applied");
    };
    drop("memory", {"memory", "memory_high", "memory_swap"});
    drop("cpu", {"cpus", "cpu_weight"});
    drop("pids", {"pids"});
    drop("io", {"io_weight", "io_max"});
    if (missing("memory")) limits.memory_max = limits.memory_high = limits.swap_max = std::nullopt;
    if (missing("cpu")) limits.cpu_quota_us = limits.cpu_weight = std::nullopt;
    if (missing("pids")) limits.pids_max = std::nullopt;
    if (missing("io")) {
        limits.io_weight = std::nullopt;
        limits.io_max.clear();
    }
    return limits;
}

// Creates the sandbox's cgroup under <cgroup2>/<cgroup-parent> (root) or
// under our own cgroup (a delegated subtree, unprivileged), with the
// controllers its limits need enabled on the way down and the limits
// written before the child exists. In agent mode a host without a usable
// cgroup2, or without a controller, degrades with a warning.
Status prepare_cgroup(const SandboxSpec& spec, Sandbox& sb) {
    // Agent mode runs without what it cannot have and says so; the
    // fail-closed modes refuse, for every caller (an unprivileged one too).
    auto degrade = [&](const std::string& what) -> Status {
        if (is_fail_closed(spec.mode))
            return Error::plain(std::string(to_string(spec.mode)) + " mode cannot run without its cgroup: " + what +
                                " [rule cgroup-required]");
        sb.degraded.push_back(what);
        return {};
    };
    auto mount = isolation::find_cgroup2_mount();
    if (!mount) return degrade("cgroup: " + mount.error().describe());
    std::string parent = *mount + "/" + spec.cgroup_parent;
    std::string available_at = *mount;
    if (::geteuid() != 0) {
        auto self = io::read_file("/proc/self/cgroup", 64 << 10);
        auto pos = self ? self->find("0::") : std::string::npos;
        if (pos == std::string::npos) return degrade("cgroup: this process is not in a cgroup v2 hierarchy");
        std::string own = self->substr(pos + 3, self->find('\n', pos) - pos - 3);
        parent = *mount + (own == "/" ? "" : own);
        available_at = parent;
    } else {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec) return Error{ec.value(), "creating cgroup parent " + parent};
    }
    auto available = isolation::available_controllers(available_at);
    auto limits = usable_limits(spec, available ? *available : std::vector<std::string>{}, available_at, sb);
    auto delegated = isolation::delegate_controllers(*mount, parent, limits.controllers());
    if (!delegated) {
        if (::geteuid() == 0) return delegated;
        NUCLEUS_TRY(degrade("cgroup: " + delegated.error().describe()));
        limits = isolation::CgroupLimits{};
    }
    // The record names the cgroup before it exists: a supervisor killed
    // between the two leaves a record that gc can act on, never an orphan.
    NUCLEUS_TRY(write_record(sb, parent + "/sandbox-" + sb.id));
    auto cgroup = isolation::SandboxCgroup::create(parent, "sandbox-" + sb.id);
    if (!cgroup) {
        if (::geteuid() == 0) return std::move(cgroup).error();
        return degrade("cgroup: " + cgroup.error().describe() + " (delegate a subtree to this user)");
    }
    sb.cgroup = std::move(*cgroup);
    sb.applied_limits = limits;
    return isolation::apply_cgroup_limits(sb.cgroup->dirfd(), limits);
}

// A private copy of `host` for the sandbox: as root on a detached tmpfs of
// `size` bytes (0: no bound), whose pages the kernel charges to whoever
// writes them (the sandbox, for what it writes); unprivileged, in a
// directory under the private dir (fsopen needs CAP_SYS_ADMIN).
Result<Sandbox::Copy> make_copy(const std::string& host, const char* what, uint64_t size, bool exec,
                                const CopyOwner& owner, Sandbox& sb) {
    auto source = io::open_fd(host, O_RDONLY | O_DIRECTORY);
    if (!source) return std::move(source).error().wrap(std::string("opening the ") + what);
    struct stat st {};
    ::fstat(source->get(), &st);
    Sandbox::Copy copy;
    if (::geteuid() == 0) {
        NUCLEUS_TRY_ASSIGN(copy.mount, isolation::detached_tmpfs({.size_bytes = size,
                                                                  .uid = owner.uid,
                                                                  .gid = owner.gid,
                                                                  .mode = static_cast<mode_t>(st.st_mode & 01777),
                                                                  .noexec = !exec}));
        NUCLEUS_TRY_ASSIGN(copy.root, isolation::open_mount_root(copy.mount.get()));
        copy.path = std::string("(private tmpfs copy of ") + host + ")";
    } else {
        NUCLEUS_TRY_ASSIGN(auto base, sb.record.private_dir());
        copy.path = base + "/" + what;
        if (::mkdir(copy.path.c_str(), 0700) < 0) return Error::from_errno("mkdir " + copy.path);
        NUCLEUS_TRY_ASSIGN(copy.root, io::open_fd(copy.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    }
    auto given = copy_tree(source->get(), copy.root.get(), owner);
    if (!given) {
        if (given.error().code == ENOSPC)
            return Error::plain(std::string("copying the ") + what + " in: " + host +
                                " holds more than --workspace-size (" + std::to_string(size >> 20) + " MiB)");
        return std::move(given).error().wrap(std::string("copying the ") + what + " in");
    }
    copy.given = std::move(*given);
    return copy;
}

Status prepare_copies(const SandboxSpec& spec, Sandbox& sb) {
    int64_t uid = isolation::map_to_host(sb.maps.uid, spec.uid);
    int64_t gid = isolation::map_to_host(sb.maps.gid, spec.gid);
    CopyOwner owner{static_cast<uid_t>(uid), static_cast<gid_t>(gid), ::geteuid() == 0 && uid >= 0 && gid >= 0};
    if (!owner.change) owner = CopyOwner{::geteuid(), ::getegid(), false};
    if (spec.workspace && spec.workspace_mode == WorkspaceMode::CopyInOut) {
        NUCLEUS_TRY_ASSIGN(sb.workspace_copy, make_copy(*spec.workspace, "workspace", spec.workspace_size,
                                                        spec.workspace_exec, owner, sb));
    }
    if (spec.context) {
        NUCLEUS_TRY_ASSIGN(sb.context_copy, make_copy(*spec.context, "context", 0, spec.workspace_exec, owner, sb));
        if (sb.context_copy->mount) NUCLEUS_TRY(isolation::make_read_only(sb.context_copy->mount.get()));
    }
    return {};
}

std::vector<std::string> final_env(const SandboxSpec& spec, const Sandbox& sb, const std::string& home) {
    std::vector<std::string> env = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=" + home,
        "HOSTNAME=" + sb.hostname,
        "USER=" + std::string(spec.uid == 0 ? "root" : "agent"),
    };
    for (const auto& entry : spec.env) {
        auto key = entry.substr(0, entry.find('=') + 1);
        std::erase_if(env, [&](const std::string& e) { return e.compare(0, key.size(), key) == 0; });
        env.push_back(entry);
    }
    return env;
}

isolation::LaunchRequest launch_request(const SandboxSpec& spec, const Sandbox& sb) {
    isolation::LaunchRequest req;
    req.staging_dir = sb.paths.staging;
    req.rootfs = spec.rootfs;
    if (spec.rootfs_closure) req.closure = closure_root_of(*spec.rootfs_closure);
    req.new_network_namespace = net::needs_network_namespace(spec.network);
    req.time_namespace = spec.time_namespace;
    req.hostname = sb.hostname;
    req.hosts_file = net::hosts_file(sb.hostname);
    req.uid = spec.uid;
    req.gid = spec.gid;
    req.user_name = spec.uid == 0 ? "root" : "agent";
    req.home = spec.uid == 0 ? "/root" : "/home/agent";
    req.maps = sb.maps;
    if (spec.workspace) {
        const auto& copy = sb.workspace_copy;
        req.workspace = isolation::BindRequest{.source = copy ? copy->path : *spec.workspace,
                                               .target = "/workspace",
                                               .writable = spec.workspace_mode != WorkspaceMode::BindRo,
                                               .exec = spec.workspace_exec,
                                               .mount_fd = copy && copy->mount ? copy->mount.get() : -1};
    }
    for (const auto& v : spec.volumes) req.volumes.push_back({v.source, v.target, v.writable, true});
    if (sb.context_copy) {
        req.context_dir = sb.context_copy->path;
        req.context_mount_fd = sb.context_copy->mount ? sb.context_copy->mount.get() : -1;
    }
    req.context_exec = spec.workspace_exec;
    req.workdir = spec.workdir.value_or("");
    req.argv = spec.command;
    req.env = final_env(spec, sb, req.home);
    for (const auto& u : spec.ulimits) req.rlimits.push_back({u.resource, u.soft, u.hard});
    req.caps_keep = spec.cap_add | (spec.caps_policy ? spec.caps_policy->ambient : 0);
    if (spec.caps_policy) req.caps_bounding = spec.caps_policy->bounding;
    req.tmpfs_size = spec.tmpfs_size;
    if (spec.landlock_policy) {
        std::vector<std::pair<std::string, uint64_t>> rules;
        for (const auto& r : spec.landlock_policy->rules) rules.emplace_back(r.path, r.access);
        req.landlock_rules = std::move(rules);
        req.landlock_min_abi = spec.landlock_policy->min_abi;
    }
    for (const auto& e : spec.secret_env) req.env.push_back(e);
    return req;
}

// --verify-rootfs-attestation and --verify-context-integrity.
Status verify_integrity(const SandboxSpec& spec) {
    auto verify = [](const std::string& dir, const char* what) -> Status {
        auto diffs = verify_rootfs(dir);
        if (!diffs) return std::move(diffs).error().wrap(std::string("verifying ") + what + " " + dir);
        if (diffs->empty()) return {};
        std::string text = std::string(what) + " " + dir + " differs from its attestation (" +
                           std::to_string(diffs->size()) + " difference" + (diffs->size() == 1 ? "" : "s") + "):";
        for (size_t i = 0; i < diffs->size() && i < 5; ++i) text += "\n  " + (*diffs)[i];
        if (diffs->size() > 5) text += "\n  ...";
        return Error::plain(text);
    };
    if (spec.verify_rootfs_attestation && spec.rootfs) NUCLEUS_TRY(verify(*spec.rootfs, "rootfs"));
    if (spec.verify_rootfs_attestation && spec.rootfs_closure)
        NUCLEUS_TRY(verify_closure_integrity(*spec.rootfs_closure));
    if (spec.verify_context_integrity) NUCLEUS_TRY(verify(*spec.context, "context"));
    return {};
}

// Output destinations: our stdout/stderr, or files in --log-dir.

Result<Sinks> open_sinks(asio::any_io_executor ex, const SandboxSpec& spec, const Sandbox& sb) {
    Sinks sinks;
    if (spec.log_dir) {
        std::error_code ec;
        std::filesystem::create_directories(*spec.log_dir, ec);
        if (ec) return Error{ec.value(), "creating --log-dir " + *spec.log_dir};
        auto out = io::OutputSink::log_file(ex, *spec.log_dir + "/" + sb.name + ".stdout.log");
        if (!out) return std::move(out).error();
        auto err = io::OutputSink::log_file(ex, *spec.log_dir + "/" + sb.name + ".stderr.log");
        if (!err) return std::move(err).error();
        sinks.out.emplace(std::move(*out));
        sinks.err.emplace(std::move(*err));
        return sinks;
    }
    auto out_fd = io::dup_fd(STDOUT_FILENO);
    auto err_fd = io::dup_fd(STDERR_FILENO);
    if (!out_fd || !err_fd) return Error::from_errno("duplicating stdout/stderr");
    auto out = io::OutputSink::adopt(ex, std::move(*out_fd));
    if (!out) return std::move(out).error();
    auto err = io::OutputSink::adopt(ex, std::move(*err_fd));
    if (!err) return std::move(err).error();
    sinks.out.emplace(std::move(*out));
    sinks.err.emplace(std::move(*err));
    return sinks;
}

// An OOM kill takes the whole sandbox (memory.oom.group), so PID 1 dies of
// SIGKILL: that exit is the OOM killer's, not an ordinary signal. A workload
// that failed after fork/clone hit pids.max is reported as such.
void refine_reason(Outcome& o, const isolation::CgroupEventCounts& c) {
    if (o.reason == "signal" && o.signal == SIGKILL && c.memory_oom_kill > 0) o.reason = "oom_kill";
    else if ((o.reason == "exit" || o.reason == "signal") && o.exit_code != 0 && c.pids_max > 0)
        o.reason = "pids_limit";
}

int exit_code_for_spawn_failure(const isolation::SpawnFailure& f, std::string& reason) {
    if (f.step == isolation::ChildStep::Exec) {
        if (f.child_errno == ENOENT || f.child_errno == ENOTDIR) {
            reason = "not_found";
            return exit_not_found;
        }
        reason = "cannot_execute";
        return exit_cannot_execute;
    }
    reason = "setup_failed";
    return exit_runtime_error;
}

void classify(Outcome& o, const SupervisionResult& s) {
    if (s.timed_out) {
        o.exit_code = exit_timeout;
        o.reason = "timeout";
    } else if (s.forwarded_fatal_signal) {
        o.exit_code = 128 + s.forwarded_fatal_signal;
        o.reason = "signal";
        o.signal = s.forwarded_fatal_signal;
    } else if (s.status.signaled) {
        o.exit_code = 128 + s.status.value;
        o.reason = "signal";
        o.signal = s.status.value;
    } else {
        o.exit_code = s.status.value;
        o.reason = "exit";
    }
}

asio::awaitable<Outcome> spawn_and_supervise(RunContext ctx) {
    Outcome outcome;
    auto started = Clock::now();
    Sinks* sinks = ctx.sinks;
    isolation::SpawnRequest request;
    request.plan = &ctx.plan->child;
    request.trace = ctx.trace;
    request.namespaces = ctx.plan->namespaces;
    request.cgroup_fd = ctx.sb->cgroup ? ctx.sb->cgroup->dirfd() : -1;
    request.maps = &ctx.plan->maps;
    const isolation::LaunchPlan* plan = ctx.plan;
    NetworkSetup* network = &ctx.sb->network;
    request.verify = [plan, network](pid_t pid) -> Status {
        NUCLEUS_TRY(isolation::verify_child(pid, *plan));
        return receive_network(*network);
    };
    if (ctx.sb->bridge) {
        SandboxNetwork* bridge = &*ctx.sb->bridge;
        request.attach_network = [bridge](pid_t pid) { return attach_bridge(bridge, pid); };
    }
    auto spawned = co_await isolation::spawn_sandbox(std::move(request));
    // The child has exec'd or is gone: nothing reads the plan's secrets now.
    ctx.plan->wipe_secrets();
    // The sandbox holds its own copies of the write ends now.
    ctx.out_pipe->write.reset();
    ctx.err_pipe->write.reset();
    if (!spawned.ok()) {
        outcome.exit_code = exit_code_for_spawn_failure(spawned.failure(), outcome.reason);
        outcome.error = spawned.failure().error.describe();
    } else {
        io::ProcessHandle& process = spawned.value().process;
        json start = start_record(*ctx.sb, *ctx.plan, process.pid(), *ctx.spec);
        if (ctx.sb->bridge) start["bridge"] = bridge_summary(*ctx.sb->bridge);
        (void)ctx.events->emit(start);
        ctx.plan->release_setup();  // the daemon keeps the plan for exec
        if (ctx.on_started) ctx.on_started(process);
        EventLog* events = ctx.events;
        std::string id = ctx.sb->id;
        SupervisionInput input{&process,
                               ctx.sb->cgroup ? &*ctx.sb->cgroup : nullptr,
                               ctx.spec->timeout_seconds,
                               ctx.out_pipe->read.release(),
                               ctx.err_pipe->read.release(),
                               &*sinks->out,
                               &*sinks->err,
                               [events, id](const isolation::CgroupEventCounts& c) {
                                   (void)events->emit({{"event", "limits"}, {"id", id}, {"counts", counts_json(c)}});
                               },
                               spawned.value().seccomp_listener.get(),
                               ctx.trace,
                               ctx.forward_signals,
                               ctx.shared_pump_buffer};
        auto egress = serve_network(*ctx.spec, ctx.sb->network, co_await asio::this_coro::executor, ctx.resolver,
                                    ctx.events, ctx.sb->id);
        auto result = co_await supervise(input);
        if (egress) {
            egress->stop();  // its sockets hold the sandbox's network namespace
            outcome.egress = egress->stats().to_json();
        }
        classify(outcome, result);
        if (!result.wait_error.ok()) {
            outcome.exit_code = exit_runtime_error;
            outcome.error = result.wait_error.error().describe();
        }
        outcome.supervision = std::move(result);
    }
    outcome.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    if (ctx.sb->bridge) co_await stop_bridge(&*ctx.sb->bridge);
    if (ctx.sb->cgroup) {
        // The counters and stats outlive the processes; read them before rmdir.
        outcome.stats = isolation::read_cgroup_stats(ctx.sb->cgroup->path());
        outcome.counts = isolation::read_cgroup_event_counts(ctx.sb->cgroup->path());
        if (outcome.supervision) refine_reason(outcome, *outcome.counts);
        outcome.cgroup_removed = co_await remove_cgroup(*ctx.sb->cgroup);
    }
    co_return outcome;
}

Status admit(const SandboxSpec& spec, EventLog& audit) {
    (void)audit.emit(request_audit(spec));
    auto host = probe_host(spec);
    // A --cgroup-parent inside another sandbox's cgroup was refused when the
    // spec was read (core/spec/keys_resources.cpp).
    auto allowed = check_mode_rules(spec, host);
    if (allowed) allowed = verify_integrity(spec);
    if (!allowed)
        (void)audit.emit({{"audit", "refused"},
                          {"mode", std::string(to_string(spec.mode))},
                          {"reason", allowed.error().describe()}});
    return allowed;
}

// Reads secrets (bounded) and compiles a custom seccomp profile. The
// request's secret copies are wiped by the caller as soon as the plan holds
// its own.
Status stage_policies(const SandboxSpec& spec, isolation::LaunchRequest& request) {
    for (const auto& secret : spec.secrets) {
        auto content = io::read_file(secret.source, 1 << 20);
        if (!content) return std::move(content).error().wrap("reading secret " + secret.name);
        request.secrets.push_back({secret.name, std::move(*content)});
    }
    if (spec.seccomp_profile) {
        auto filter = isolation::compile_seccomp(spec.seccomp_profile->policy);
        if (!filter) return std::move(filter).error().wrap("compiling " + spec.seccomp_profile->path);
        request.seccomp_filter = std::move(*filter);
    }
    if (spec.seccomp_log_denied) request.seccomp_flags |= SECCOMP_FILTER_FLAG_LOG;
    return {};
}

void wipe(isolation::LaunchRequest& request) {
    for (auto& s : request.secrets) explicit_bzero(s.content.data(), s.content.size());
    for (auto& e : request.env) explicit_bzero(e.data(), e.size());
}

// Everything up to the reactor: ids, cgroup, copies, plan. On failure,
// whatever was made so far is undone by the caller's teardown.
Result<std::unique_ptr<isolation::LaunchPlan>> prepare(const SandboxSpec& spec, Sandbox& sb, io::PipePair& out,
                                                       io::PipePair& err, int devnull) {
    auto maps = build_maps(spec, sb);
    if (!maps) return std::move(maps).error().wrap("preparing user namespace");
    sb.maps = std::move(*maps);
    // Before the record is written: it names the leased address.
    auto bridge = prepare_bridge(spec, sb.id, sb.paths.root, sb.record_extra);
    if (!bridge) return std::move(bridge).error().wrap("preparing the network");
    sb.bridge = std::move(*bridge);
    NUCLEUS_TRY(prepare_cgroup(spec, sb).wrap("preparing the cgroup"));
    if (!sb.record_written) NUCLEUS_TRY(write_record(sb, ""));  // running without a cgroup
    if (spec.rootfs_closure) {  // after the record: gc finds the root from the id (core/closure_gcroot.hpp)
        auto root = add_closure_gcroot(sb.id, *spec.rootfs_closure);
        if (!root) return std::move(root).error();
        if (root->empty()) sb.notes.push_back("no Nix gcroots directory on this host: the closure has no gc root");
    }
    NUCLEUS_TRY(prepare_copies(spec, sb));
    auto request = launch_request(spec, sb);
    NUCLEUS_TRY(prepare_network(spec, sb.network, request));
    NUCLEUS_TRY(stage_policies(spec, request));
    request.die_with_supervisor = sb.die_with_supervisor;
    request.stdio[0] = devnull;
    request.stdio[1] = out.write.get();
    request.stdio[2] = err.write.get();
    auto plan = isolation::LaunchPlan::build(request);
    wipe(request);
    if (!plan) return std::move(plan).error().wrap("planning the sandbox");
    if (!(*plan)->landlock.enforced) {
        if (is_fail_closed(spec.mode))
            return Error::plain(std::string(to_string(spec.mode)) + " mode cannot run without Landlock: " +
                                (*plan)->landlock.reason + " [rule landlock-required]");
        sb.degraded.push_back("landlock: " + (*plan)->landlock.reason);
    }
    return plan;
}

namespace {

// Where a failed sync keeps the sandbox's copy: <kept>/<id>/workspace, for
// the workspace's owner. An on-disk copy is moved there; a tmpfs one is
// copied out (it goes away with its descriptor).
std::string keep_copy(const SandboxSpec& spec, Sandbox& sb, const CopyOwner& owner, std::vector<std::string>& notes) {
    std::string dir = sb.paths.kept + "/" + sb.id;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    ::chmod(sb.paths.kept.c_str(), 0711);
    ::chmod(dir.c_str(), 0711);
    std::string target = dir + "/workspace";
    auto& copy = *sb.workspace_copy;
    if (!copy.mount && ::rename(copy.path.c_str(), target.c_str()) == 0) return target;
    if (::mkdir(target.c_str(), 0700) < 0) {
        notes.push_back("keeping the copy: mkdir " + target + ": " + std::strerror(errno));
        return "";
    }
    auto into = io::open_fd(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    auto kept = into ? copy_tree(copy.root.get(), into->get(), owner) : Result<Manifest>(into.error());
    if (!kept) {
        notes.push_back("keeping the copy in " + target + ": " + kept.error().describe());
        return "";
    }
    (void)spec;
    return target;
}

}  // namespace

SyncResult sync_workspace(const SandboxSpec& spec, Sandbox& sb) {
    SyncResult result;
    auto& copy = *sb.workspace_copy;
    auto host = io::open_fd(*spec.workspace, O_RDONLY | O_DIRECTORY);
    struct stat st {};
    if (host) ::fstat(host->get(), &st);
    CopyOwner owner{st.st_uid, st.st_gid, ::geteuid() == 0};
    auto report = host ? sync_tree_back(copy.root.get(), host->get(), copy.given, owner)
                       : Result<SyncReport>(std::move(host).error().wrap("opening the workspace"));
    if (report && report->conflicts.empty()) {
        result.complete = true;
        return result;
    }
    result.conflicts = report ? report->conflicts : std::vector<std::string>{report.error().describe()};
    result.summary =
        result.conflicts.front() +
        (result.conflicts.size() > 1 ? " and " + std::to_string(result.conflicts.size() - 1) + " more" : "");
    result.kept = keep_copy(spec, sb, owner, result.conflicts);
    return result;
}

json teardown(const SandboxSpec& spec, Sandbox& sb, Outcome& outcome, bool quiet) {
    json cleanup = json::object();
    bool clean = true;
    auto warn = [quiet](const std::string& text) {
        if (!quiet) report_warning(text);
    };
    if (sb.cgroup && !sb.cgroup->removed()) {
        // Preparation failed before the reactor ran: nothing entered the cgroup.
        auto st = sb.cgroup->remove();
        if (!st) outcome.cgroup_removed = std::move(st);
    }
    if (sb.cgroup) {
        cleanup["cgroup_removed"] = outcome.cgroup_removed.ok();
        if (!outcome.cgroup_removed) {
            clean = false;
            warn(outcome.cgroup_removed.error().describe());
        }
    }
    if (sb.bridge) {
        std::string warning;
        if (!release_bridge(*sb.bridge, cleanup, warning)) {
            clean = false;
            warn(warning);
        }
    }
    if (sb.workspace_copy && outcome.supervision) {
        auto synced = sync_workspace(spec, sb);
        cleanup["workspace_synced"] = synced.complete;
        if (!synced.complete) {
            clean = false;
            cleanup["workspace_conflicts"] = synced.conflicts;
            if (!synced.kept.empty()) cleanup["workspace_kept"] = synced.kept;
            std::string message = "the workspace could not be synced back (" + synced.summary + ")" +
                                  (synced.kept.empty() ? "" : "; the sandbox's copy is kept in " + synced.kept);
            if (outcome.exit_code != exit_sync_failed && outcome.supervision)
                message += "; the workload itself exited " + std::to_string(outcome.exit_code);
            outcome.exit_code = exit_sync_failed;
            outcome.reason = "workspace_sync_failed";
            outcome.error = outcome.error.empty() ? message : outcome.error + "; " + message;
        }
    }
    sb.workspace_copy.reset();
    sb.context_copy.reset();
    {
        // Also without a closure in the spec: a re-adopted sandbox's spec is
        // read back from its document, and its manifest may be gone by then.
        auto root = remove_closure_gcroot(sb.id);
        if (spec.rootfs_closure || !root) cleanup["gcroot_removed"] = root.ok();
        if (!root) {
            clean = false;
            warn(root.error().describe());
        }
    }
    // A cgroup that could not be removed keeps its record, unlocked once
    // `sb` goes: gc (a later `nucleus run`, `nucleus gc`, the daemon's
    // retry or its recovery) removes both, and nothing is forgotten.
    if (!outcome.cgroup_removed) {
        cleanup["state_removed"] = false;
        clean = false;
    } else if (auto removed = sb.record.remove(); !removed) {
        cleanup["state_removed"] = false;
        clean = false;
        warn(removed.error().describe());
    } else {
        cleanup["state_removed"] = true;
    }
    cleanup["ok"] = clean;
    return cleanup;
}

void readopt_bridge(const SandboxSpec& spec, Sandbox& sb) {
    if (spec.network != net::NetworkMode::Bridge) return;
    auto text = io::read_file(sb.paths.sandboxes + "/" + sb.id + ".json", 1 << 20);
    json record = json::parse(text ? *text : "", nullptr, false);
    std::string warning;
    sb.bridge = core::readopt_bridge(spec, sb.id, sb.paths.root, record, warning);
    if (!warning.empty()) report_warning(warning);
}

}  // namespace nucleus::core::lifecycle
