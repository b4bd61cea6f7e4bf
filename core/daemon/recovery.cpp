// Reading the records back after a restart; retrying clean-ups that could
// not complete. Recovery runs before the reactor does, so its short
// blocking waits (a cgroup emptying after cgroup.kill) stall nothing.
#include "core/daemon/recovery.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include <asio/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "core/closure_gcroot.hpp"
#include "core/daemon/daemon.hpp"
#include "core/log.hpp"
#include "core/events.hpp"
#include "io/process.hpp"
#include "isolation/cgroup.hpp"
#include "isolation/idmap.hpp"

namespace nucleus::core::daemon {

using nlohmann::json;

Result<SandboxSpec> spec_from_record(const PersistedSandbox& stored) {
    return spec_from_resolved(stored.document.get(), DocumentSource::Daemon);
}

std::optional<unsigned long long> process_start_ticks(pid_t pid) {
    auto stat = io::read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
    if (!stat) return std::nullopt;
    auto close = stat->rfind(')');
    if (close == std::string::npos || close + 2 > stat->size()) return std::nullopt;
    std::istringstream fields(stat->substr(close + 2));
    std::string field;
    for (int i = 3; i <= 22 && fields >> field; ++i)
        if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
    return std::nullopt;
}

bool process_in_cgroup(pid_t pid, const std::string& cgroup_path) {
    auto text = io::read_file("/proc/" + std::to_string(pid) + "/cgroup", 64 << 10);
    if (!text) return false;
    auto pos = text->find("0::");
    if (pos == std::string::npos) return false;
    std::string rel = text->substr(pos + 3, text->find('\n', pos) - pos - 3);
    return !rel.empty() && cgroup_path.ends_with(rel);
}

namespace {

Result<std::unique_ptr<Entry>> restore_entry(const RecordStore::Stored& stored, asio::any_io_executor ex) {
    if (stored.record.is_discarded()) return Error::plain("it holds no complete record");
    auto record = decode_record(stored.record);
    if (!record) return std::move(record).error();
    if (record->id != stored.id) return Error::plain("its record names sandbox " + record->id);
    auto spec = spec_from_record(*record);
    if (!spec) return std::move(spec).error().wrap("its spec document");
    auto e = std::make_unique<Entry>(ex);
    e->record = std::move(*record);
    e->spec = std::move(*spec);
    e->file = stored.file;
    return e;
}

// Kills what is left in the cgroup and removes it, waiting up to 2 s for
// the kernel to empty it. False when it is still there.
bool remove_cgroup_now(const std::string& path) {
    auto cgroup = isolation::SandboxCgroup::open(path);
    if (!cgroup) return cgroup.error().code == ENOENT;
    (void)cgroup->kill();
    for (int i = 0; i < 200; ++i) {
        auto removed = cgroup->remove();
        if (removed) return true;
        if (removed.error().code != EBUSY) return false;
        ::usleep(10000);
    }
    return false;
}

}  // namespace

Status Daemon::recover() {
    if (::access(records_.dir().c_str(), R_OK | X_OK) < 0) return Error::from_errno("opening " + records_.dir());
    int adopted = 0, ended = 0;
    for (const auto& stored : records_.load()) {
        auto restored = restore_entry(stored, executor());
        if (!restored) {
            lifecycle::report_warning("ignoring unreadable sandbox record " + records_.path(stored.id) + ": " +
                                      restored.error().describe());
            records_.remove(stored.id);
            continue;
        }
        Entry& e = table_.add(std::move(*restored));
        if (e.record.phase == Phase::Exited || e.record.phase == Phase::Created) continue;
        // Running (or starting) when the daemon died: alive, and the same process?
        if (adopt(e)) {
            ++adopted;
        } else {
            end_unobserved(e);
            ++ended;
        }
    }
    // Cleanup records that no daemon record names (a daemon killed between
    // the two writes), and those kept because their cgroup could not be
    // removed: their cgroups and copies belong to nothing now.
    auto leftovers = collect_stale_sandboxes(paths_);
    for (const auto& err : leftovers.errors) lifecycle::report_warning("recovery: " + err);
    if (!leftovers.errors.empty()) schedule_cleanup();
    if (adopted || ended)
        log::info("re-adopted " + std::to_string(adopted) + " running sandbox" + (adopted == 1 ? "" : "es") + "; " +
                  std::to_string(ended) + " ended while the daemon was down");
    return {};
}

bool Daemon::adopt(Entry& e) {
    PersistedSandbox& r = e.record;
    if (!r.pid || r.start_ticks == 0) return false;
    auto pidfd = io::pidfd_open(*r.pid);
    if (!pidfd || process_start_ticks(*r.pid) != r.start_ticks) return false;
    if (!r.cgroup_path.empty() && !process_in_cgroup(*r.pid, r.cgroup_path)) return false;
    e.live.pidfd = std::move(*pidfd);
    auto sb = std::make_unique<lifecycle::Sandbox>();
    sb->id = r.id;
    sb->name = r.name;
    sb->paths = paths_;
    if (auto record = SandboxRecord::adopt(paths_, r.id)) sb->record = std::move(*record);
    if (r.id_slot) {
        // Our lease on its uid/gid range died with the old daemon; take it
        // back so no sandbox created from now on gets the same range.
        if (auto lease = isolation::lease_id_slot(paths_.ids, *r.id_slot)) sb->lease = std::move(*lease);
        else
            lifecycle::report_warning("re-adopting sandbox " + r.id + ": " + lease.error().describe() +
                                      "; it shares its host uid/gid range with that one");
    }
    lifecycle::readopt_bridge(e.spec, *sb);  // --network bridge: its address lease, taken again
    e.live.sb = std::move(sb);
    r.phase = Phase::Running;
    r.adopted = true;
    persist(e);
    publish({{"event", "adopt"}, {"id", r.id}, {"name", r.name}, {"pid", *r.pid}});
    spawn_task(watch_adopted(&e));
    return true;
}

// Ended while no daemon watched: kill what may remain, remove the cgroup,
// then the cleanup record and private copies; the exit status went to
// whoever reaped it. A cgroup that stays keeps its cleanup record, for gc.
void Daemon::end_unobserved(Entry& e) {
    PersistedSandbox& r = e.record;
    if (r.cgroup_path.empty() || remove_cgroup_now(r.cgroup_path)) {
        if (auto record = SandboxRecord::adopt(paths_, r.id)) (void)record->remove();
        (void)remove_tree(paths_.sandboxes + "/" + r.id);
        (void)remove_closure_gcroot(r.id);
    } else {
        lifecycle::report_warning("sandbox " + r.id + ": its cgroup " + r.cgroup_path +
                                  " could not be removed; its cleanup record is kept for a later gc");
    }
    r.phase = Phase::Exited;
    r.reason = "exited_unobserved";
    r.exit_code.reset();
    r.signal.reset();
    r.finished_at = utc_timestamp();
    persist(e);
}

namespace {

asio::awaitable<void> collect_on_worker(const RuntimePaths* paths, CleanupReport* report) {
    *report = collect_stale_sandboxes(*paths);
    co_return;
}

}  // namespace

void Daemon::schedule_cleanup() {
    if (cleanup_scheduled_ || stopping_) return;
    cleanup_scheduled_ = true;
    spawn_task(retry_cleanup());
}

// Cleanup records kept because a cgroup could not be removed (something
// else still in it or below it): gc on the worker thread, 5 s later, then
// at doubling intervals for about 10 minutes; after that, the next
// recovery (or `nucleus gc` for `nucleus run`'s) tries again.
asio::awaitable<void> Daemon::retry_cleanup() {
    auto ex = co_await asio::this_coro::executor;
    for (auto delay = std::chrono::seconds(5); delay <= std::chrono::seconds(320) && !stopping_; delay *= 2) {
        asio::steady_timer timer(ex, delay);
        (void)co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        CleanupReport report;
        co_await asio::co_spawn(blocking_, collect_on_worker(&paths_, &report), asio::use_awaitable);
        if (report.errors.empty()) break;
    }
    cleanup_scheduled_ = false;
}

}  // namespace nucleus::core::daemon
