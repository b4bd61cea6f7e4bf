// A sandbox re-adopted after a daemon restart, supervised to its end. It
// is not the daemon's child: its exit shows as its pidfd becoming readable,
// and its status went to whoever reaped it. Its output goes on into its log
// files when its pipes are found again.
#include <fcntl.h>
#include <sys/stat.h>

#include <asio/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "core/daemon/daemon.hpp"
#include "core/events.hpp"
#include "core/supervise.hpp"
#include "io/pump.hpp"
#include "isolation/cgroup.hpp"

namespace nucleus::core::daemon {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A re-adopted sandbox's stdout or stderr pipe, found again through
// /proc/PID/fd/N: opening that link read-only gives a new read end of the
// same pipe. Only while fd N of the sandbox's PID 1 is still the pipe
// recorded at start (same device and inode, checked before and after the
// open): whatever else a workload may have put there is left alone.
std::optional<io::unique_fd> reattach_output(pid_t pid, int fd, PipeId pipe) {
    if (pipe.second == 0) return std::nullopt;
    std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
    auto same = [&](const struct stat& st) {
        return S_ISFIFO(st.st_mode) && uint64_t(st.st_dev) == pipe.first && uint64_t(st.st_ino) == pipe.second;
    };
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0 || !same(st)) return std::nullopt;
    auto opened = io::open_fd(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!opened || ::fstat(opened->get(), &st) < 0 || !same(st)) return std::nullopt;
    return std::move(*opened);
}

// The re-attached pumps. Shared with their handlers, which may outlive
// watch_adopted if a pipe never reaches EOF.
struct ReattachedOutput {
    struct Stream {
        asio::posix::stream_descriptor source;
        io::OutputSink sink;
    };
    explicit ReattachedOutput(asio::any_io_executor ex) : done(ex, Clock::time_point::max()) {}
    std::vector<std::unique_ptr<Stream>> streams;
    int pumping = 0;
    asio::steady_timer done;  // cancelled when the last pump ends
};

}  // namespace

asio::awaitable<void> Daemon::watch_adopted(Entry* e) {
    lifecycle::Outcome outcome;
    outcome.reason = "exited_unobserved";
    outcome.exit_code = -1;
    std::string failure;
    try {
        co_await follow_adopted(*e, outcome);
    } catch (const std::exception& ex) {
        failure = ex.what();
    } catch (...) {
        failure = "unknown exception";
    }
    if (!failure.empty()) {
        // As for a run that failed (runner.cpp): it still ends, cleaned up.
        lifecycle::report_error("supervising re-adopted sandbox " + e->record.id + ": " + failure);
        outcome.error = "the daemon failed supervising the sandbox: " + failure;
        kill(*e);
        auto cgroup = isolation::SandboxCgroup::open(e->record.cgroup_path);
        if (!e->record.cgroup_path.empty() && cgroup) outcome.cgroup_removed = co_await remove_cgroup(*cgroup);
    }
    json cleanup = lifecycle::teardown(e->spec, *e->live.sb, outcome, true);
    if (!outcome.cgroup_removed) schedule_cleanup();
    json final_event = {{"event", "exit"},      {"id", e->record.id},       {"name", e->record.name},
                        {"exit_code", nullptr}, {"reason", outcome.reason}, {"cleanup", cleanup}};
    if (!outcome.egress.is_null()) final_event["egress"] = outcome.egress;
    finish(*e, outcome, final_event);
}

// Its output into its logs, its exit, its cgroup removed, its pipes drained.
asio::awaitable<void> Daemon::follow_adopted(Entry& e, lifecycle::Outcome& outcome) {
    auto ex = co_await asio::this_coro::executor;
    auto output = std::make_shared<ReattachedOutput>(ex);
    const char* names[] = {"stdout", "stderr"};
    for (int i = 0; e.record.pid && i < 2; ++i) {
        auto fd = reattach_output(*e.record.pid, i + 1, e.record.pipes[i]);
        if (!fd) continue;
        output->streams.push_back(std::make_unique<ReattachedOutput::Stream>(
            ReattachedOutput::Stream{asio::posix::stream_descriptor(ex, fd->release()),
                                     io::OutputSink::rotating_log(log_path(e, names[i]), config_.log_max_bytes)}));
        auto& stream = *output->streams.back();
        stream.sink.on_write([this, id = e.record.id] {
            if (Entry* cur = table_.get(id)) cur->live.output.notify();
        });
        ++output->pumping;
        io::pump_shared(stream.source, stream.sink, [output](io::PumpResult) {
            if (--output->pumping == 0) output->done.cancel();
        });
    }
    // Its egress sockets closed with the old daemon; they are made again
    // in its network namespace and served until it exits.
    auto egress = serve_adopted_egress(e);
    if (auto dup = io::dup_fd(e.live.pidfd.get())) {
        asio::posix::stream_descriptor pidfd(ex, dup->release());
        (void)co_await pidfd.async_wait(asio::posix::descriptor_base::wait_read, use_tuple);
    }
    if (egress) {
        egress->stop();
        outcome.egress = egress->stats().to_json();
    }
    auto cgroup = isolation::SandboxCgroup::open(e.record.cgroup_path);
    if (!e.record.cgroup_path.empty() && cgroup) {
        outcome.stats = isolation::read_cgroup_stats(cgroup->path());
        outcome.cgroup_removed = co_await remove_cgroup(*cgroup);
    }
    // The cgroup is gone, so every writer is: the pipes are at EOF once
    // drained (bounded, in case something outside still holds one).
    if (output->pumping > 0) {
        output->done.expires_after(std::chrono::seconds(5));
        (void)co_await output->done.async_wait(use_tuple);
    }
    for (auto& s : output->streams) {
        std::error_code ignored;
        s->source.cancel(ignored);
    }
}

// --network egress, re-adopted: the sockets are made again inside the
// sandbox's network namespace (its rules and routes live on in it), on the
// same privileged ports, which the workload cannot take meanwhile. A
// handful of syscalls on the reactor thread, which setns(2) switches into
// the namespace and straight back.
std::shared_ptr<net::EgressService> Daemon::serve_adopted_egress(Entry& e) {
    if (e.spec.network != net::NetworkMode::Egress || !e.record.pid) return nullptr;
    auto netns = io::open_fd("/proc/" + std::to_string(*e.record.pid) + "/ns/net", O_RDONLY);
    auto sockets = netns ? net::create_egress_sockets_in(netns->get()) : Result<net::EgressSockets>(netns.error());
    if (!sockets) {
        lifecycle::report_warning("re-adopting sandbox " + e.record.id +
                                  ": its egress is not served: " + sockets.error().describe());
        publish(
            {{"event", "egress"}, {"id", e.record.id}, {"action", "error"}, {"reason", sockets.error().describe()}});
        return nullptr;
    }
    net::EgressService::Options options;
    options.policy = e.spec.egress;
    options.resolver = egress_resolver();
    options.owns_resolver = false;
    options.on_event = [this, id = e.record.id](json record) {
        record["id"] = id;
        record["time"] = utc_timestamp();
        publish(std::move(record));
    };
    return net::EgressService::start(reactor_.get_executor(), std::move(*sockets), std::move(options));
}

}  // namespace nucleus::core::daemon
