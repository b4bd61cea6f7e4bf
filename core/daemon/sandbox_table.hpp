// The daemon's sandboxes, by id. Each Entry keeps apart what is recorded
// (PersistedSandbox, sandbox_record.hpp) and what exists only while this
// daemon runs the sandbox (LiveSandbox: the prepared sandbox, its launch
// plan, a pidfd, and the wake-ups waiters sleep on).
//
// A sandbox is named by its full id, a unique id prefix of 4 or more
// characters, or its name. Names that could be read as an id prefix (4 to
// 32 lowercase hex digits) are refused at creation, so a reference that
// looks like one is only ever resolved against ids: no name can stand in
// for another sandbox's id prefix.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <asio/any_io_executor.hpp>

#include "core/daemon/broadcast.hpp"
#include "core/daemon/record_store.hpp"
#include "core/daemon/sandbox_record.hpp"
#include "core/lifecycle.hpp"
#include "core/spec.hpp"
#include "io/unique_fd.hpp"
#include "isolation/launch_plan.hpp"

namespace nucleus::core::daemon {

struct LiveSandbox {
    explicit LiveSandbox(asio::any_io_executor ex) : started(ex), exited(ex), output(ex) {}

    std::unique_ptr<lifecycle::Sandbox> sb;  // ids, cgroup, cleanup record
    std::unique_ptr<isolation::LaunchPlan> plan;  // while running: what exec joins under
    io::unique_fd pidfd;  // of its PID 1 (a dup of the supervised process's)
    int execs = 0;  // exec'd processes still running
    bool removing = false;  // a forced DELETE is under way
    // A signal PID 1 could not receive, so the sandbox was killed for it:
    // reported as that signal (128 + N), as `nucleus run` does.
    int fatal_signal = 0;

    Broadcast started;  // the phase left Starting
    Broadcast exited;  // the phase became Exited
    Broadcast output;  // a log grew, or an exec ended
};

struct Entry {
    explicit Entry(asio::any_io_executor ex) : live(ex) {}

    PersistedSandbox record;
    SandboxSpec spec;
    RecordFile file;  // what its record file holds
    CompactJson final_event;  // the exit event, for inspect (not persisted)
    LiveSandbox live;
};

class SandboxTable {
public:
    Entry& add(std::unique_ptr<Entry> entry);
    // By full id only; null when gone (e.g. removed while a request waited).
    Entry* get(const std::string& id) const;
    // By id, unique id prefix or name; the error says which of "no such
    // sandbox" or "more than one".
    Result<Entry*> find(std::string_view ref) const;
    bool name_taken(std::string_view name) const;
    void erase(const std::string& id) { entries_.erase(id); }

    size_t size() const { return entries_.size(); }
    size_t count(Phase phase) const;
    // The `n` exited sandboxes that finished first.
    std::vector<std::string> oldest_exited(size_t n) const;

    auto begin() const { return entries_.begin(); }
    auto end() const { return entries_.end(); }

private:
    std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
};

}  // namespace nucleus::core::daemon
