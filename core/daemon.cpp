#include "core/daemon.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>

#include <CLI/CLI.hpp>
#include <asio/as_tuple.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include "core/lifecycle.hpp"
#include "io/http.hpp"
#include "isolation/join.hpp"
#include "isolation/join_plan.hpp"
#include "io/process.hpp"
#include "io/reactor.hpp"

namespace nucleus::core {

namespace {

using nlohmann::json;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

constexpr const char* daemon_version = "0.1.0";

struct DaemonConfig {
    std::string socket = "/run/nucleus/nucleus.sock";
    std::string state_dir = "/var/lib/nucleus";
    std::string log_dir;  // default <state-dir>/logs
    std::string socket_group;
    uint64_t log_max_bytes = 8 << 20;
    size_t max_sandboxes = 10000;
    size_t keep_exited = 1000;  // exited sandboxes kept for inspect until removed
};

enum class Phase { Created, Starting, Running, Exited };

const char* phase_name(Phase p) {
    switch (p) {
    case Phase::Created: return "created";
    case Phase::Starting: return "starting";
    case Phase::Running: return "running";
    case Phase::Exited: return "exited";
    }
    return "unknown";
}

std::optional<Phase> phase_from(const std::string& s) {
    if (s == "created") return Phase::Created;
    if (s == "starting") return Phase::Starting;
    if (s == "running") return Phase::Running;
    if (s == "exited") return Phase::Exited;
    return std::nullopt;
}

// A one-shot broadcast: waiters wait on a timer that never expires by
// itself; notify() cancels it and arms a fresh one for later waiters.
class Signal {
public:
    explicit Signal(asio::any_io_executor ex) : timer_(std::make_unique<asio::steady_timer>(ex, Clock::time_point::max())) {}
    asio::awaitable<void> wait() {
        auto* t = timer_.get();
        (void)co_await t->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    void notify() { timer_->cancel(); }

private:
    std::unique_ptr<asio::steady_timer> timer_;
};

// The start time of `pid` in clock ticks since boot (proc(5) stat field 22):
// with the pid, it names one process for good.
std::optional<unsigned long long> process_start_ticks(pid_t pid) {
    auto stat = io::read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
    if (!stat) return std::nullopt;
    auto close = stat->rfind(')');
    if (close == std::string::npos) return std::nullopt;
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
    return !rel.empty() && cgroup_path.size() >= rel.size() &&
           cgroup_path.compare(cgroup_path.size() - rel.size(), rel.size(), rel) == 0;
}

// Writes `content` to `path` through a temporary file and rename(2): a
// reader (or a daemon restarted after a crash) sees the old or the new
// record, never half of one.
Status write_atomically(const std::string& path, const std::string& content) {
    std::string tmp = path + ".tmp";
    auto fd = io::open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (!fd) return std::move(fd).error();
    if (auto st = io::write_all(fd->get(), content); !st) {
        ::unlink(tmp.c_str());
        return st;
    }
    fd->reset();
    if (::rename(tmp.c_str(), path.c_str()) < 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return Error::from_errno("rename " + tmp, e);
    }
    return {};
}

Result<int> parse_signal(const std::string& text) {
    static const std::map<std::string, int> names = {
        {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"STOP", SIGSTOP}, {"CONT", SIGCONT}, {"ALRM", SIGALRM},
        {"WINCH", SIGWINCH}, {"PIPE", SIGPIPE}};
    std::string t = text;
    for (auto& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (t.rfind("SIG", 0) == 0) t = t.substr(3);
    if (auto it = names.find(t); it != names.end()) return it->second;
    char* end = nullptr;
    long n = std::strtol(t.c_str(), &end, 10);
    if (!t.empty() && *end == '\0' && n >= 1 && n <= 64) return static_cast<int>(n);
    return Error::plain("unknown signal '" + text + "' (use a name such as TERM or a number 1-64)");
}

Result<double> parse_seconds(const std::string& text, const char* what) {
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(v >= 0) || v > 86400 * 365)
        return Error::plain(std::string(what) + " must be a number of seconds, got '" + text + "'");
    return v;
}


// A JSON value kept serialised: a thousand sandboxes' spec documents and
// start records as nlohmann trees cost a few KiB each in small allocations;
// as text, a few hundred bytes. Parsed again only for inspect and records.
class CompactJson {
public:
    CompactJson& operator=(const json& value) {
        text_ = value.is_null() ? std::string() : value.dump();
        text_.shrink_to_fit();
        return *this;
    }
    bool is_null() const noexcept { return text_.empty(); }
    json get() const { return text_.empty() ? json(nullptr) : json::parse(text_); }
    // Adds `"key":<this>` to the serialised, non-empty JSON object `object`
    // without parsing this value again.
    void append_to(std::string& object, const char* key) const {
        if (text_.empty()) return;
        object.pop_back();  // the closing brace
        ((((object += ",\"") += key) += "\":") += text_) += '}';
    }

private:
    std::string text_;
};

struct Entry {
    explicit Entry(asio::any_io_executor ex) : started(ex), exited(ex), output(ex) {}

    std::string id;
    std::string name;
    CompactJson document;
    SandboxSpec spec;
    Phase phase = Phase::Created;
    bool adopted = false;
    std::optional<pid_t> pid;
    unsigned long long start_ticks = 0;
    std::string cgroup_path;
    std::string created_at, started_at, finished_at;
    std::optional<int> exit_code;
    std::optional<int> signal;
    std::string reason;
    std::string error;
    CompactJson start_event;   // namespaces, mounts, seccomp, Landlock, capabilities
    CompactJson final_event;

    // Live parts, while starting or running.
    std::unique_ptr<lifecycle::Sandbox> sb;
    io::unique_fd pidfd;  // a dup of the supervised process's pidfd
    isolation::LaunchPlan* plan = nullptr;  // while running: what exec joins under
    int execs = 0;                          // exec'd processes still running
    bool removing = false;
    // A signal PID 1 could not receive, so the sandbox was killed for it:
    // reported as that signal (128 + N), as `nucleus run` does.
    int fatal_signal = 0;
    // Complete records in its record file; 0: none, or a torn tail that the
    // next persist must not append to (see persist()).
    int record_lines = 0;
    size_t record_bytes = 0;
    // The stdout and stderr pipes (st_dev, st_ino), recorded so that a
    // daemon re-adopting the sandbox can find them again (reattach_output).
    std::array<std::pair<uint64_t, uint64_t>, 2> pipes{};

    Signal started;  // phase left Starting
    Signal exited;   // phase became Exited
    Signal output;   // a log grew (followers)
};

json sandbox_json(const Entry& e) {
    auto or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
    json out = {{"id", e.id},
                {"name", e.name},
                {"state", phase_name(e.phase)},
                {"pid", e.pid && e.phase == Phase::Running ? json(*e.pid) : json(nullptr)},
                {"command", e.spec.command},
                {"mode", std::string(to_string(e.spec.mode))},
                {"created_at", e.created_at},
                {"started_at", or_null(e.started_at)},
                {"finished_at", or_null(e.finished_at)},
                {"exit_code", e.exit_code ? json(*e.exit_code) : json(nullptr)},
                {"signal", e.signal ? json(*e.signal) : json(nullptr)},
                {"reason", or_null(e.reason)},
                {"cgroup", or_null(e.cgroup_path)},
                {"adopted", e.adopted}};
    if (!e.error.empty()) out["error"] = e.error;
    return out;
}

class Daemon {
public:
    Daemon(asio::io_context& reactor, DaemonConfig config, RuntimePaths paths)
        : reactor_(reactor), config_(std::move(config)), paths_(std::move(paths)), events_signal_(reactor.get_executor()) {}

    Status recover();
    asio::awaitable<void> handle(const io::http::Request& req, io::http::Responder& res);
    void shutdown();
    size_t live_tasks() const { return tasks_; }

private:
    std::string record_path(const Entry& e) const { return config_.state_dir + "/daemon/" + e.id + ".json"; }
    std::string log_path(const Entry& e, const char* stream) const {
        return config_.log_dir + "/" + e.id + "." + stream + ".log";
    }
    void persist(Entry& e);
    void publish(json event);
    Entry* find(const std::string& ref, std::string& why);

    asio::awaitable<void> create(const io::http::Request& req, io::http::Responder& res);
    asio::awaitable<Status> start(Entry& e);
    asio::awaitable<void> run_entry(Entry* e);
    asio::awaitable<void> watch_adopted(Entry* e);
    void finish(Entry& e, lifecycle::Outcome& outcome, const json& final_event);
    Status send_signal(Entry& e, int sig);
    asio::awaitable<void> wait_exit(Entry& e, std::optional<double> timeout_s, io::http::Responder& res, bool& exited);
    asio::awaitable<void> logs(Entry& e, const io::http::Request& req, io::http::Responder& res);
    asio::awaitable<void> event_stream(io::http::Responder& res);
    asio::awaitable<void> exec(Entry& e, const io::http::Request& req, io::http::Responder& res);
    std::string metrics() const;
    void forget(const std::string& id);
    void spawn_task(asio::awaitable<void> task);

    asio::io_context& reactor_;
    DaemonConfig config_;
    RuntimePaths paths_;
    asio::thread_pool blocking_{1};  // prepare(): copies, cgroup set-up, policy compilation
    std::map<std::string, std::unique_ptr<Entry>> entries_;
    std::deque<std::pair<uint64_t, std::string>> recent_events_;  // (seq, NDJSON line)
    uint64_t next_event_ = 0;
    Signal events_signal_;
    size_t tasks_ = 0;
    bool stopping_ = false;
    // Counters for /v1/metrics.
    uint64_t created_total_ = 0, started_total_ = 0, start_failures_ = 0, requests_total_ = 0;
    std::map<std::string, uint64_t> exits_by_reason_;
    double spawn_seconds_sum_ = 0;
    uint64_t spawn_count_ = 0;
};

void Daemon::spawn_task(asio::awaitable<void> task) {
    ++tasks_;
    asio::co_spawn(reactor_, std::move(task), [this](std::exception_ptr e) {
        --tasks_;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                lifecycle::report_error(std::string("daemon task failed: ") + ex.what());
            }
        }
    });
}

namespace {

// A record file holds one JSON record per line; the last complete line is
// current. Returns that record (discarded when there is none) and sets
// `appendable` to the number of complete lines when the file ends in a
// complete, valid record, else 0.
json last_record(const std::string& text, int& appendable) {
    appendable = 0;
    std::vector<std::string_view> lines;
    std::string_view rest = text;
    for (auto nl = rest.find('\n'); nl != std::string_view::npos; nl = rest.find('\n')) {
        lines.push_back(rest.substr(0, nl));
        rest.remove_prefix(nl + 1);
    }
    const bool torn_tail = !rest.empty();
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        json record = json::parse(*it, nullptr, false);
        if (!record.is_object()) continue;
        if (!torn_tail && it == lines.rbegin()) appendable = static_cast<int>(lines.size());
        return record;
    }
    return json(json::value_t::discarded);
}

Status append_record(const std::string& path, const std::string& line) {
    auto fd = io::open_fd(path, O_WRONLY | O_APPEND | O_NOFOLLOW);
    if (!fd) return std::move(fd).error();
    return io::write_all(fd->get(), line);
}

// Appended records (and bytes) before the file is rewritten with only the
// current record: the file stays far below what recovery reads (4 MiB).
constexpr int max_record_lines = 8;
constexpr size_t max_record_file_bytes = 1 << 20;

}  // namespace

// The first record of a sandbox is written through a temporary file and
// rename; later transitions append a whole new record with one write(2)
// (O_APPEND), which takes no new inode and no rename. On journal-less ext4
// (this project's CI guests) every inode allocation scans the recently
// deleted ones: at 300 sandboxes/s that was 12 % of the daemon's CPU. A
// line cut short by a crash lacks its newline or does not parse, so the
// record before it stands (recovery reads the last complete line), and an
// append that fails part-way is followed by a full rewrite, never by
// another append onto the fragment.
void Daemon::persist(Entry& e) {
    json record = sandbox_json(e);
    record["pid"] = e.pid ? json(*e.pid) : json(nullptr);
    record["start_ticks"] = e.start_ticks;
    // Which host id range it runs in, so a daemon that re-adopts it after a
    // crash can lease that range again before anything new is created.
    if (e.sb && e.sb->lease) record["id_slot"] = e.sb->lease->slot();
    if (e.phase != Phase::Exited && e.pipes[0].second != 0)
        record["pipes"] = {{e.pipes[0].first, e.pipes[0].second}, {e.pipes[1].first, e.pipes[1].second}};
    // The document and start record are kept as text: spliced in, not parsed.
    std::string text = record.dump();
    e.document.append_to(text, "document");
    e.start_event.append_to(text, "start_event");
    text += '\n';
    if (e.record_lines > 0 && e.record_lines < max_record_lines &&
        e.record_bytes + text.size() <= max_record_file_bytes) {
        if (append_record(record_path(e), text)) {
            ++e.record_lines;
            e.record_bytes += text.size();
            return;
        }
    }
    e.record_lines = 0;
    if (auto st = write_atomically(record_path(e), text); !st) {
        lifecycle::report_warning("recording sandbox " + e.id + ": " + st.error().describe());
    } else {
        e.record_lines = 1;
        e.record_bytes = text.size();
    }
}

void Daemon::publish(json event) {
    if (!event.contains("time")) event["time"] = utc_timestamp();
    recent_events_.emplace_back(next_event_++, event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
    while (recent_events_.size() > 1024) recent_events_.pop_front();
    events_signal_.notify();
}

Entry* Daemon::find(const std::string& ref, std::string& why) {
    if (auto it = entries_.find(ref); it != entries_.end()) return it->second.get();
    Entry* match = nullptr;
    for (auto& [id, e] : entries_) {
        if (e->name == ref) return e.get();
        if (ref.size() >= 4 && id.compare(0, ref.size(), ref) == 0) {
            if (match) {
                why = "'" + ref + "' names more than one sandbox; give more of the id";
                return nullptr;
            }
            match = e.get();
        }
    }
    if (!match) why = "no sandbox '" + ref + "'";
    return match;
}

void Daemon::forget(const std::string& id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    Entry& e = *it->second;
    ::unlink(record_path(e).c_str());
    for (const char* s : {"stdout", "stderr"}) {
        ::unlink(log_path(e, s).c_str());
        ::unlink((log_path(e, s) + ".1").c_str());
    }
    publish({{"event", "remove"}, {"id", e.id}, {"name", e.name}});
    entries_.erase(it);
}

// ---- Lifecycle -------------------------------------------------------------

asio::awaitable<Status> Daemon::start(Entry& e) {
    e.phase = Phase::Starting;
    spawn_task(run_entry(&e));
    co_await e.started.wait();
    if (e.phase == Phase::Exited && e.reason == "setup_failed") co_return Error::plain(e.error);
    co_return Status{};
}

asio::awaitable<void> Daemon::run_entry(Entry* e) {
    auto began = Clock::now();
    auto ex = co_await asio::this_coro::executor;
    e->sb = std::make_unique<lifecycle::Sandbox>();
    lifecycle::Sandbox& sb = *e->sb;
    sb.id = e->id;
    sb.name = e->name;
    sb.hostname = e->spec.hostname.value_or(e->id.substr(0, 12));
    sb.paths = paths_;
    sb.die_with_supervisor = false;
    sb.record_extra = {{"owner", "daemon"}};

    lifecycle::Outcome outcome;
    auto out = io::make_pipe();
    auto err = io::make_pipe();
    auto devnull = io::open_fd("/dev/null", O_RDONLY);
    std::unique_ptr<isolation::LaunchPlan> plan;
    if (out && err) {
        struct stat st{};
        if (::fstat(out->read.get(), &st) == 0) e->pipes[0] = {st.st_dev, st.st_ino};
        if (::fstat(err->read.get(), &st) == 0) e->pipes[1] = {st.st_dev, st.st_ino};
    }
    if (!out || !err || !devnull) {
        outcome.error = "creating output pipes: " + std::string(std::strerror(errno));
    } else {
        // Blocking preparation (copies, cgroup, policy compilation) runs on
        // the worker thread; the reactor carries on meanwhile.
        std::string prepare_error;
        co_await asio::co_spawn(
            blocking_,
            [&]() -> asio::awaitable<void> {
                auto prepared = lifecycle::prepare(e->spec, sb, *out, *err, devnull->get());
                if (prepared) plan = std::move(*prepared);
                else prepare_error = prepared.error().describe();
                co_return;
            },
            asio::use_awaitable);
        if (!plan) outcome.error = prepare_error;
    }
    if (plan) {
        if (sb.cgroup) e->cgroup_path = sb.cgroup->path();
        lifecycle::Sinks sinks;
        // Log files appear with the first output.
        auto so = io::OutputSink::rotating_log(log_path(*e, "stdout"), config_.log_max_bytes);
        auto se = io::OutputSink::rotating_log(log_path(*e, "stderr"), config_.log_max_bytes);
        {
            Entry* entry = e;
            so.on_write([entry] { entry->output.notify(); });
            se.on_write([entry] { entry->output.notify(); });
            sinks.out.emplace(std::move(so));
            sinks.err.emplace(std::move(se));
            auto events = EventLog::to([this, entry](const json& record) {
                if (record.value("event", "") == "start") entry->start_event = record;
                publish(record);
            });
            lifecycle::RunContext ctx{nullptr, &e->spec, &sb, plan.get(), &events, &*out, &*err, &sinks,
                                      false, true, {}};
            ctx.on_started = [this, entry, began](const io::ProcessHandle& process) {
                entry->pid = process.pid();
                entry->start_ticks = process_start_ticks(process.pid()).value_or(0);
                if (auto dup = io::dup_fd(process.pidfd())) entry->pidfd = std::move(*dup);
                entry->phase = Phase::Running;
                entry->started_at = utc_timestamp();
                ++started_total_;
                spawn_seconds_sum_ += std::chrono::duration<double>(Clock::now() - began).count();
                ++spawn_count_;
                persist(*entry);
                entry->started.notify();
            };
            e->plan = plan.get();
            outcome = co_await lifecycle::spawn_and_supervise(ctx);
            e->plan = nullptr;
            // exec'd processes die with the sandbox (cgroup.kill); their
            // coroutines still read the plan until they have reaped them.
            while (e->execs > 0) co_await e->output.wait();
        }
    }
    plan.reset();
    json cleanup = lifecycle::teardown(e->spec, sb, outcome, true);
    json final_event = lifecycle::final_record(sb, outcome, cleanup);
    finish(*e, outcome, final_event);
}

void Daemon::finish(Entry& e, lifecycle::Outcome& outcome, const json& final_event) {
    bool never_started = e.phase != Phase::Running;
    e.phase = Phase::Exited;
    e.finished_at = utc_timestamp();
    e.reason = outcome.reason.empty() ? "setup_failed" : outcome.reason;
    e.exit_code = outcome.exit_code;
    e.signal = outcome.signal;
    if (e.fatal_signal && e.reason == "signal" && outcome.signal == SIGKILL) {
        e.signal = e.fatal_signal;
        e.exit_code = 128 + e.fatal_signal;
    }
    e.error = outcome.error;
    e.final_event = final_event;
    e.pidfd.reset();
    e.sb.reset();
    if (never_started) ++start_failures_;
    ++exits_by_reason_[e.reason];
    persist(e);
    publish(final_event);
    e.started.notify();
    e.exited.notify();
    e.output.notify();
}

namespace {

// A re-adopted sandbox's stdout or stderr pipe, found again through
// /proc/PID/fd/N: opening that link read-only gives a new read end of the
// same pipe. Only while fd N of the sandbox's PID 1 is still the pipe
// recorded at start (same device and inode, checked before and after the
// open): whatever else a workload may have put there is left alone.
std::optional<io::unique_fd> reattach_output(pid_t pid, int fd, std::pair<uint64_t, uint64_t> pipe) {
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

}  // namespace

// A sandbox re-adopted after a daemon restart is not our child: its exit
// shows as the pidfd becoming readable, and its status went to whoever
// reaped it. The cgroup and records are cleaned up as after any exit.
asio::awaitable<void> Daemon::watch_adopted(Entry* e) {
    auto ex = co_await asio::this_coro::executor;
    // Its output goes on into its log files when the pipes are found again.
    // Shared with the pumps' handlers, which may outlive this coroutine if
    // a pipe never reaches EOF (see below).
    struct Output {
        struct Stream {
            asio::posix::stream_descriptor source;
            io::OutputSink sink;
        };
        explicit Output(asio::any_io_executor ex) : done(ex, Clock::time_point::max()) {}
        std::vector<std::unique_ptr<Stream>> streams;
        int pumping = 0;
        asio::steady_timer done;
    };
    auto output = std::make_shared<Output>(ex);
    const char* names[] = {"stdout", "stderr"};
    for (int i = 0; e->pid && i < 2; ++i) {
        auto fd = reattach_output(*e->pid, i + 1, e->pipes[i]);
        if (!fd) continue;
        output->streams.push_back(std::make_unique<Output::Stream>(
            Output::Stream{asio::posix::stream_descriptor(ex, fd->release()),
                           io::OutputSink::rotating_log(log_path(*e, names[i]), config_.log_max_bytes)}));
        auto& stream = *output->streams.back();
        stream.sink.on_write([this, id = e->id] {
            if (auto it = entries_.find(id); it != entries_.end()) it->second->output.notify();
        });
        ++output->pumping;
        io::pump_shared(stream.source, stream.sink, [output](io::PumpResult) {
            if (--output->pumping == 0) output->done.cancel();
        });
    }
    auto dup = io::dup_fd(e->pidfd.get());
    if (dup) {
        asio::posix::stream_descriptor pidfd(ex, dup->release());
        (void)co_await pidfd.async_wait(asio::posix::descriptor_base::wait_read, asio::as_tuple(asio::use_awaitable));
    }
    lifecycle::Outcome outcome;
    outcome.reason = "exited_unobserved";
    outcome.exit_code = -1;
    if (!e->cgroup_path.empty()) {
        if (auto cg = isolation::SandboxCgroup::open(e->cgroup_path)) {
            outcome.stats = isolation::read_cgroup_stats(cg->path());
            outcome.cgroup_removed = co_await remove_cgroup(*cg);
        }
    }
    // The cgroup is gone, so every writer is: the pipes are at EOF once
    // drained (bounded, in case something outside still holds one).
    if (output->pumping > 0) {
        output->done.expires_after(std::chrono::seconds(5));
        (void)co_await output->done.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    for (auto& s : output->streams) {
        std::error_code ignored;
        s->source.cancel(ignored);
    }
    json cleanup = json::object();
    if (e->sb) cleanup = lifecycle::teardown(e->spec, *e->sb, outcome, true);
    json final_event = {{"event", "exit"}, {"id", e->id}, {"name", e->name}, {"exit_code", nullptr},
                        {"reason", outcome.reason}, {"cleanup", cleanup}};
    finish(*e, outcome, final_event);
    e->exit_code.reset();
    persist(*e);
}

Status Daemon::send_signal(Entry& e, int sig) {
    if (e.phase != Phase::Running || !e.pidfd) return Error{ESRCH, "sandbox " + e.id + " is not running"};
    if (::syscall(SYS_pidfd_send_signal, e.pidfd.get(), sig, nullptr, 0) < 0)
        return Error::from_errno("signalling sandbox " + e.id);
    // The kernel drops a signal to a PID namespace's init that neither
    // handles nor ignores it; as `nucleus run` does, such a signal ends the
    // whole sandbox.
    if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCONT && e.pid && !init_handles_signal(*e.pid, sig)) {
        e.fatal_signal = sig;
        if (!e.cgroup_path.empty() && io::write_file(e.cgroup_path + "/cgroup.kill", "1")) return {};
        ::syscall(SYS_pidfd_send_signal, e.pidfd.get(), SIGKILL, nullptr, 0);
    }
    return {};
}

// ---- Recovery --------------------------------------------------------------

Status Daemon::recover() {
    std::string dir = config_.state_dir + "/daemon";
    DIR* d = ::opendir(dir.c_str());
    if (!d) return Error::from_errno("opening " + dir);
    std::vector<std::string> files;
    while (auto* ent = ::readdir(d)) {
        std::string n = ent->d_name;
        if (n.size() == 37 && n.compare(32, 5, ".json") == 0) files.push_back(n);
        else if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) ::unlinkat(::dirfd(d), n.c_str(), 0);
    }
    ::closedir(d);
    int adopted = 0, ended = 0;
    for (const auto& f : files) {
        auto text = io::read_file(dir + "/" + f, 4 << 20);
        int appendable = 0;
        json rec = text ? last_record(*text, appendable) : json();
        auto e = std::make_unique<Entry>(reactor_.get_executor());
        e->record_lines = appendable;
        e->record_bytes = text ? text->size() : 0;
        std::optional<Phase> phase;
        std::optional<SandboxSpec> spec;
        if (rec.is_object() && rec.contains("document")) {
            auto s = spec_from_document(rec["document"]);
            if (s) spec = std::move(*s);
            phase = phase_from(rec.value("state", ""));
        }
        if (!phase || !spec || rec.value("id", "") != f.substr(0, 32)) {
            lifecycle::report_warning("ignoring unreadable sandbox record " + dir + "/" + f);
            ::unlink((dir + "/" + f).c_str());
            continue;
        }
        e->id = rec["id"];
        e->name = rec.value("name", e->id);
        e->document = rec["document"];
        e->spec = std::move(*spec);
        e->phase = *phase;
        e->created_at = rec.value("created_at", "");
        e->started_at = rec["started_at"].is_string() ? rec["started_at"].get<std::string>() : "";
        e->finished_at = rec["finished_at"].is_string() ? rec["finished_at"].get<std::string>() : "";
        e->cgroup_path = rec["cgroup"].is_string() ? rec["cgroup"].get<std::string>() : "";
        if (rec["exit_code"].is_number_integer()) e->exit_code = rec["exit_code"].get<int>();
        if (rec["signal"].is_number_integer()) e->signal = rec["signal"].get<int>();
        e->reason = rec["reason"].is_string() ? rec["reason"].get<std::string>() : "";
        e->adopted = rec.value("adopted", false);
        if (rec["pipes"].is_array() && rec["pipes"].size() == 2) {
            for (size_t i = 0; i < 2; ++i) {
                const json& p = rec["pipes"][i];
                if (p.is_array() && p.size() == 2 && p[0].is_number_unsigned() && p[1].is_number_unsigned())
                    e->pipes[i] = {p[0].get<uint64_t>(), p[1].get<uint64_t>()};
            }
        }
        if (rec.contains("start_event")) e->start_event = rec["start_event"];
        Entry& entry = *e;
        entries_[entry.id] = std::move(e);

        if (entry.phase == Phase::Exited || entry.phase == Phase::Created) continue;
        // Running (or starting) when the daemon died: alive, and the same process?
        bool alive = false;
        if (rec["pid"].is_number_integer()) {
            pid_t pid = rec["pid"].get<pid_t>();
            auto ticks = rec.value("start_ticks", 0ULL);
            auto fd = io::pidfd_open(pid);
            if (fd && process_start_ticks(pid) == ticks && ticks != 0 &&
                (entry.cgroup_path.empty() || process_in_cgroup(pid, entry.cgroup_path))) {
                entry.pid = pid;
                entry.start_ticks = ticks;
                entry.pidfd = std::move(*fd);
                alive = true;
            }
        }
        auto sb = std::make_unique<lifecycle::Sandbox>();
        sb->id = entry.id;
        sb->name = entry.name;
        sb->paths = paths_;
        if (auto record = SandboxRecord::adopt(paths_, entry.id)) sb->record = std::move(*record);
        if (alive && rec["id_slot"].is_number_unsigned()) {
            // Our lease on its uid/gid range died with the old daemon; take it
            // back so no sandbox created from now on gets the same range.
            auto slot = rec["id_slot"].get<uint64_t>();
            auto lease = isolation::lease_id_slot(paths_.ids, static_cast<uint32_t>(std::min<uint64_t>(slot, UINT32_MAX)));
            if (lease) sb->lease = std::move(*lease);
            else lifecycle::report_warning("re-adopting sandbox " + entry.id + ": " + lease.error().describe() +
                                           "; it shares its host uid/gid range with that one");
        }
        if (alive) lifecycle::readopt_network(entry.spec, *sb);
        if (alive) {
            entry.phase = Phase::Running;
            entry.adopted = true;
            entry.sb = std::move(sb);
            ++adopted;
            persist(entry);
            publish({{"event", "adopt"}, {"id", entry.id}, {"name", entry.name}, {"pid", *entry.pid}});
            spawn_task(watch_adopted(&entry));
            continue;
        }
        // Ended while no daemon watched: kill what may remain, remove the
        // cgroup and records; the exit status went to whoever reaped it.
        ++ended;
        if (!entry.cgroup_path.empty()) {
            (void)io::write_file(entry.cgroup_path + "/cgroup.kill", "1");
            for (int i = 0; i < 200 && ::rmdir(entry.cgroup_path.c_str()) < 0 && errno == EBUSY; ++i) ::usleep(10000);
        }
        (void)sb->record.remove();
        ::unlink((paths_.sandboxes + "/" + entry.id + ".json").c_str());
        (void)remove_tree(paths_.sandboxes + "/" + entry.id);
        entry.phase = Phase::Exited;
        entry.reason = "exited_unobserved";
        entry.exit_code.reset();
        entry.finished_at = utc_timestamp();
        persist(entry);
    }
    // Cleanup records that no daemon record names (a daemon killed between
    // the two writes): their cgroups and copies belong to nothing.
    auto leftovers = collect_stale_sandboxes(paths_);
    for (const auto& err : leftovers.errors) lifecycle::report_warning("recovery: " + err);
    if (adopted || ended)
        std::fprintf(stderr, "nucleus daemon: re-adopted %d running sandbox%s; %d ended while the daemon was down\n",
                     adopted, adopted == 1 ? "" : "es", ended);
    return {};
}

// ---- API -------------------------------------------------------------------

asio::awaitable<void> Daemon::create(const io::http::Request& req, io::http::Responder& res) {
    if (stopping_) {
        co_await res.send_error(503, "the daemon is shutting down");
        co_return;
    }
    json doc = json::parse(req.body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        co_await res.send_error(400, "the body must be a JSON object: the spec document (keys as nucleus run --config)");
        co_return;
    }
    for (const char* key : {"events_fd", "config_fd", "env_fd", "log_dir", "events_jsonl"}) {
        if (doc.contains(key)) {
            co_await res.send_error(400, std::string("'") + key +
                                             "' cannot be used through the daemon (file descriptors and log files are the daemon's)");
            co_return;
        }
    }
    auto spec = spec_from_document(doc);
    if (!spec) {
        co_await res.send_error(400, spec.error().describe());
        co_return;
    }
    if (spec->seccomp_mode == SeccompMode::Trace) {
        co_await res.send_error(400, "seccomp trace mode is only available with nucleus run");
        co_return;
    }
    bool start_now = true;
    if (auto it = req.query.find("start"); it != req.query.end()) {
        if (it->second == "false" || it->second == "0") start_now = false;
        else if (it->second != "true" && it->second != "1") {
            co_await res.send_error(400, "start must be true or false");
            co_return;
        }
    }
    size_t live = 0;
    for (auto& [id, e] : entries_) live += e->phase != Phase::Exited;
    if (live >= config_.max_sandboxes) {
        co_await res.send_error(429, "the daemon already holds " + std::to_string(live) + " sandboxes (--max-sandboxes)");
        co_return;
    }
    std::string id = lifecycle::random_id();
    std::string name = spec->name.empty() ? "nucleus-" + id.substr(0, 12) : spec->name;
    for (auto& [other_id, other] : entries_) {
        if (other->name == name) {
            co_await res.send_error(409, "the name '" + name + "' is in use by sandbox " + other_id.substr(0, 12));
            co_return;
        }
    }
    auto audit = EventLog::to([this](const json& record) { publish(record); });
    if (auto allowed = lifecycle::admit(*spec, audit); !allowed) {
        co_await res.send_error(400, allowed.error().describe());
        co_return;
    }
    auto e = std::make_unique<Entry>(reactor_.get_executor());
    e->id = id;
    e->name = name;
    e->document = doc;
    e->spec = std::move(*spec);
    e->created_at = utc_timestamp();
    Entry& entry = *e;
    entries_[id] = std::move(e);
    ++created_total_;
    // A sandbox started at once is recorded when it runs (or fails): until
    // then its cleanup record (prepare()) is what a recovering daemon finds.
    if (!start_now) persist(entry);
    publish({{"event", "create"}, {"id", id}, {"name", name}});
    // Old exited sandboxes beyond the keep limit go, oldest first.
    size_t exited = 0;
    for (auto& [i, x] : entries_) exited += x->phase == Phase::Exited;
    if (exited > config_.keep_exited) {
        std::vector<std::pair<std::string, std::string>> old;
        for (auto& [i, x] : entries_)
            if (x->phase == Phase::Exited) old.emplace_back(x->finished_at, i);
        std::sort(old.begin(), old.end());
        for (size_t k = 0; k < exited - config_.keep_exited; ++k) forget(old[k].second);
    }
    if (start_now) {
        auto st = co_await start(entry);
        if (!st) {
            co_await res.send_error(500, "starting sandbox " + id.substr(0, 12) + ": " + st.error().describe());
            co_return;
        }
    }
    co_await res.send_json(201, sandbox_json(entry));
}

asio::awaitable<void> Daemon::wait_exit(Entry& e, std::optional<double> timeout_s, io::http::Responder& res,
                                        bool& exited) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer limit(ex, Clock::time_point::max());
    if (timeout_s)
        limit.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*timeout_s)));
    if (e.phase != Phase::Exited)
        (void)co_await (e.exited.wait() || limit.async_wait(asio::as_tuple(asio::use_awaitable)) || res.client_gone());
    exited = e.phase == Phase::Exited;
}

// The last `n` lines of a bounded read of the file's end.
std::string tail_lines(const std::string& path, size_t n) {
    auto fd = io::open_fd(path, O_RDONLY | O_NOFOLLOW);
    if (!fd) return {};
    struct stat st {};
    ::fstat(fd->get(), &st);
    off_t want = std::min<off_t>(st.st_size, 1 << 20);
    std::string buf(static_cast<size_t>(want), '\0');
    ssize_t got = ::pread(fd->get(), buf.data(), buf.size(), st.st_size - want);
    buf.resize(got > 0 ? static_cast<size_t>(got) : 0);
    size_t pos = buf.size();
    if (pos && buf[pos - 1] == '\n') --pos;
    for (size_t lines = 0; pos > 0; --pos)
        if (buf[pos - 1] == '\n' && ++lines == n) break;
    return buf.substr(pos);
}

asio::awaitable<void> Daemon::logs(Entry& e, const io::http::Request& req, io::http::Responder& res) {
    std::string stream = "stdout";
    if (auto it = req.query.find("stream"); it != req.query.end()) stream = it->second;
    if (stream != "stdout" && stream != "stderr") {
        co_await res.send_error(400, "stream must be stdout or stderr");
        co_return;
    }
    std::optional<size_t> tail;
    if (auto it = req.query.find("tail"); it != req.query.end() && it->second != "all") {
        char* end = nullptr;
        unsigned long n = std::strtoul(it->second.c_str(), &end, 10);
        if (it->second.empty() || *end != '\0' || n > 1000000) {
            co_await res.send_error(400, "tail must be a number of lines (or all)");
            co_return;
        }
        tail = n;
    }
    bool follow = req.query.count("follow") && (req.query.at("follow") == "true" || req.query.at("follow") == "1");
    std::string path = log_path(e, stream.c_str());
    std::string id = e.id;
    auto fd = io::open_fd(path, O_RDONLY | O_NOFOLLOW);
    if (!follow) {
        std::string body;
        if (tail) body = tail_lines(path, *tail);
        else if (fd) {
            auto all = io::read_file(path, config_.log_max_bytes + 1);
            if (all) body = std::move(*all);
        }
        co_await res.send(200, "text/plain; charset=utf-8", body);
        co_return;
    }
    if (!(co_await res.begin_stream(200, "text/plain; charset=utf-8"))) co_return;
    off_t offset = 0;
    if (tail) {
        std::string first = tail_lines(path, *tail);
        struct stat st {};
        if (fd) ::fstat(fd->get(), &st);
        offset = st.st_size;
        if (!(co_await res.send_chunk(first))) co_return;
    }
    std::string buf(64 << 10, '\0');
    for (;;) {
        // The entry may be removed while we follow: look it up each round.
        auto it = entries_.find(id);
        if (it == entries_.end()) break;
        Entry& cur = *it->second;
        if (!fd) fd = io::open_fd(path, O_RDONLY | O_NOFOLLOW);
        bool exited = cur.phase == Phase::Exited;
        if (fd) {
            struct stat st {};
            ::fstat(fd->get(), &st);
            if (st.st_nlink == 0 || st.st_size < offset) {  // rotated: continue in the new file
                fd = io::open_fd(path, O_RDONLY | O_NOFOLLOW);
                offset = 0;
                continue;
            }
            ssize_t n;
            while (fd && (n = ::pread(fd->get(), buf.data(), buf.size(), offset)) > 0) {
                offset += n;
                if (!(co_await res.send_chunk({buf.data(), static_cast<size_t>(n)}))) co_return;
            }
        }
        if (exited) break;
        co_await (cur.output.wait() || cur.exited.wait() || res.client_gone());
        if (res.is_client_gone()) co_return;
    }
    co_await res.end_stream();
}

asio::awaitable<void> Daemon::event_stream(io::http::Responder& res) {
    if (!(co_await res.begin_stream(200, "application/x-ndjson"))) co_return;
    uint64_t next = next_event_;
    for (;;) {
        for (const auto& [seq, line] : recent_events_) {
            if (seq < next) continue;
            if (!(co_await res.send_chunk(line))) co_return;
            next = seq + 1;
        }
        if (stopping_) break;
        co_await (events_signal_.wait() || res.client_gone());
        if (res.is_client_gone()) co_return;
    }
    co_await res.end_stream();
}

// Reads a pipe to EOF, keeping at most `cap` bytes (the rest is read and
// dropped, so the writer never blocks on a full pipe).
asio::awaitable<void> collect(asio::posix::stream_descriptor pipe, std::string& into, size_t cap, bool& truncated) {
    char buf[16384];
    for (;;) {
        auto [ec, n] = co_await pipe.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
        if (ec) break;
        size_t keep = std::min(n, cap - std::min(cap, into.size()));
        into.append(buf, keep);
        if (keep < n) truncated = true;
    }
}

asio::awaitable<void> Daemon::exec(Entry& e, const io::http::Request& req, io::http::Responder& res) {
    constexpr size_t cap = 1 << 20;
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
        co_await res.send_error(400, "the body must be a JSON object: {\"command\": [...], \"env\": [...], \"workdir\": \"...\"}");
        co_return;
    }
    std::string problem;
    for (auto& [key, value] : body.items())
        if (key != "command" && key != "env" && key != "workdir") problem = "unknown field '" + key + "' (command, env, workdir)";
    auto strings = [&](const char* key, std::vector<std::string>& out) {
        if (!body.contains(key)) return;
        if (!body[key].is_array()) problem = std::string(key) + " must be an array of strings";
        else
            for (auto& v : body[key]) {
                if (!v.is_string()) problem = std::string(key) + " must be an array of strings";
                else out.push_back(v.get<std::string>());
            }
    };
    std::vector<std::string> command, env;
    strings("command", command);
    strings("env", env);
    if (problem.empty() && (command.empty() || command[0].empty())) problem = "command must name a program";
    for (auto& kv : env)
        if (kv.find('=') == std::string::npos || kv.front() == '=') problem = "env entries are KEY=VALUE, got '" + kv + "'";
    std::string workdir;
    if (body.contains("workdir")) {
        if (!body["workdir"].is_string() || body["workdir"].get<std::string>().empty() || body["workdir"].get<std::string>()[0] != '/')
            problem = "workdir must be an absolute path";
        else workdir = body["workdir"];
    }
    if (!problem.empty()) {
        co_await res.send_error(400, problem);
        co_return;
    }
    if (e.phase != Phase::Running || !e.plan || !e.pidfd) {
        co_await res.send_error(409, "sandbox " + e.id.substr(0, 12) + " is " + phase_name(e.phase) +
                                         (e.adopted ? " (re-adopted: exec needs the plan of a sandbox this daemon started)" : ""));
        co_return;
    }
    auto ex = co_await asio::this_coro::executor;
    auto out = io::make_pipe();
    auto err = io::make_pipe();
    auto devnull = io::open_fd("/dev/null", O_RDONLY);
    if (!out || !err || !devnull) {
        co_await res.send_error(500, "creating pipes for exec: " + std::string(std::strerror(errno)));
        co_return;
    }
    isolation::JoinRequest join;
    join.target_pidfd = e.pidfd.get();
    join.target_pid = e.pid.value_or(-1);
    auto cgroup_fd = e.cgroup_path.empty() ? Result<io::unique_fd>(io::unique_fd{})
                                           : io::open_fd(e.cgroup_path, O_PATH | O_DIRECTORY);
    join.cgroup_fd = cgroup_fd ? cgroup_fd->get() : -1;
    join.plan = e.plan;
    join.argv = command;
    if (!env.empty()) join.env = env;
    join.workdir = workdir;
    join.stdio[0] = devnull->get();
    join.stdio[1] = out->write.get();
    join.stdio[2] = err->write.get();
    Entry* entry = &e;
    ++entry->execs;
    isolation::JoinFailure failure;
    auto joined = co_await isolation::spawn_joined(std::move(join), &failure);
    out->write.reset();
    err->write.reset();
    if (!joined) {
        --entry->execs;
        entry->output.notify();
        int status = 500;
        if (failure.step == static_cast<uint32_t>(isolation::JoinStep::Exec))
            status = failure.child_errno == ENOENT ? 404 : 400;
        co_await res.send_error(status, joined.error().describe());
        co_return;
    }
    io::ProcessHandle process = std::move(*joined);
    publish({{"event", "exec"}, {"id", entry->id}, {"pid", process.pid()}, {"command", command}});
    std::string stdout_text, stderr_text;
    bool out_trunc = false, err_trunc = false;
    asio::posix::stream_descriptor out_pipe(ex, out->read.release());
    asio::posix::stream_descriptor err_pipe(ex, err->read.release());
    auto finished = co_await ((process.wait_exit() && collect(std::move(out_pipe), stdout_text, cap, out_trunc) &&
                               collect(std::move(err_pipe), stderr_text, cap, err_trunc)) ||
                              res.client_gone());
    if (finished.index() == 1) {  // the client left: the process goes too
        (void)process.send_signal(SIGKILL);
        (void)co_await process.wait_exit();
    }
    --entry->execs;
    entry->output.notify();
    if (finished.index() == 1) co_return;
    auto& status = std::get<0>(finished);  // (&& drops the void results)
    json reply;
    if (!status) {
        co_await res.send_error(500, status.error().describe());
        co_return;
    }
    reply["exit_code"] = status->shell_code();
    reply["signal"] = status->signaled ? json(status->value) : json(nullptr);
    reply["stdout"] = stdout_text;
    reply["stderr"] = stderr_text;
    reply["truncated"] = out_trunc || err_trunc;
    co_await res.send_json(200, reply);
}

std::string Daemon::metrics() const {
    std::map<std::string, int> by_phase = {{"created", 0}, {"starting", 0}, {"running", 0}, {"exited", 0}};
    for (auto& [id, e] : entries_) ++by_phase[phase_name(e->phase)];
    long rss_kib = 0;
    if (auto status = io::read_file("/proc/self/status", 64 << 10)) {
        auto pos = status->find("\nVmRSS:");
        if (pos != std::string::npos) rss_kib = std::strtol(status->c_str() + pos + 7, nullptr, 10);
    }
    int fds = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (::readdir(d)) ++fds;
        ::closedir(d);
        fds -= 2;
    }
    std::string out;
    auto line = [&](const std::string& l) { out += l + "\n"; };
    line("# HELP nucleus_sandboxes Sandboxes known to the daemon, by state.");
    line("# TYPE nucleus_sandboxes gauge");
    for (auto& [phase, n] : by_phase) line("nucleus_sandboxes{state=\"" + phase + "\"} " + std::to_string(n));
    line("# HELP nucleus_sandboxes_created_total Sandboxes created through the API.");
    line("# TYPE nucleus_sandboxes_created_total counter");
    line("nucleus_sandboxes_created_total " + std::to_string(created_total_));
    line("# HELP nucleus_sandboxes_started_total Sandboxes whose workload started.");
    line("# TYPE nucleus_sandboxes_started_total counter");
    line("nucleus_sandboxes_started_total " + std::to_string(started_total_));
    line("# HELP nucleus_sandbox_start_failures_total Sandboxes that failed before their workload ran.");
    line("# TYPE nucleus_sandbox_start_failures_total counter");
    line("nucleus_sandbox_start_failures_total " + std::to_string(start_failures_));
    line("# HELP nucleus_sandbox_exits_total Sandbox exits, by reason.");
    line("# TYPE nucleus_sandbox_exits_total counter");
    for (auto& [reason, n] : exits_by_reason_) line("nucleus_sandbox_exits_total{reason=\"" + reason + "\"} " + std::to_string(n));
    line("# HELP nucleus_spawn_seconds Time from start request to running workload.");
    line("# TYPE nucleus_spawn_seconds summary");
    line("nucleus_spawn_seconds_sum " + std::to_string(spawn_seconds_sum_));
    line("nucleus_spawn_seconds_count " + std::to_string(spawn_count_));
    line("# HELP nucleus_api_requests_total API requests served.");
    line("# TYPE nucleus_api_requests_total counter");
    line("nucleus_api_requests_total " + std::to_string(requests_total_));
    line("# HELP nucleus_daemon_resident_bytes The daemon's resident set size.");
    line("# TYPE nucleus_daemon_resident_bytes gauge");
    line("nucleus_daemon_resident_bytes " + std::to_string(rss_kib * 1024L));
    line("# HELP nucleus_daemon_open_fds File descriptors open in the daemon.");
    line("# TYPE nucleus_daemon_open_fds gauge");
    line("nucleus_daemon_open_fds " + std::to_string(fds));
    return out;
}

asio::awaitable<void> Daemon::handle(const io::http::Request& req, io::http::Responder& res) {
    ++requests_total_;
    const std::string& path = req.path;
    const std::string& m = req.method;
    // (The message is owned by the coroutine: send_error takes a view and
    // runs only when awaited.)
    auto method_not_allowed = [&]() -> asio::awaitable<void> {
        std::string message = m + " is not allowed on " + path;
        co_await res.send_error(405, message);
    };
    if (path == "/v1/health") {
        if (m != "GET") co_return co_await method_not_allowed();
        size_t running = 0;
        for (auto& [id, e] : entries_) running += e->phase == Phase::Running;
        json health = {{"status", stopping_ ? "stopping" : "ok"}, {"version", daemon_version},
                       {"sandboxes", entries_.size()}, {"running", running}};
        co_await res.send_json(200, health);
        co_return;
    }
    if (path == "/v1/metrics") {
        if (m != "GET") co_return co_await method_not_allowed();
        co_await res.send(200, "text/plain; version=0.0.4", metrics());
        co_return;
    }
    if (path == "/v1/events") {
        if (m != "GET") co_return co_await method_not_allowed();
        co_await event_stream(res);
        co_return;
    }
    if (path == "/v1/sandboxes") {
        if (m == "POST") {
            co_await create(req, res);
            co_return;
        }
        if (m != "GET") co_return co_await method_not_allowed();
        bool all = req.query.count("all") && (req.query.at("all") == "true" || req.query.at("all") == "1");
        json list = json::array();
        for (auto& [id, e] : entries_)
            if (all || e->phase != Phase::Exited) list.push_back(sandbox_json(*e));
        json body = {{"sandboxes", std::move(list)}};
        co_await res.send_json(200, body);
        co_return;
    }
    const std::string prefix = "/v1/sandboxes/";
    if (path.compare(0, prefix.size(), prefix) != 0) {
        co_await res.send_error(404, "no such endpoint: " + path + " (see docs/API.md)");
        co_return;
    }
    std::string rest = path.substr(prefix.size());
    std::string ref = rest.substr(0, rest.find('/'));
    std::string action = rest.size() > ref.size() ? rest.substr(ref.size() + 1) : "";
    std::string why;
    Entry* e = find(ref, why);
    if (!e) {
        co_await res.send_error(404, why);
        co_return;
    }
    std::string id = e->id;
    auto still = [&]() -> Entry* {  // after a suspension the entry may be gone
        auto it = entries_.find(id);
        return it == entries_.end() ? nullptr : it->second.get();
    };
    if (action.empty()) {
        if (m == "GET") {
            json out = sandbox_json(*e);
            if (!e->start_event.is_null()) out["start"] = e->start_event.get();
            if (e->phase == Phase::Running && !e->cgroup_path.empty())
                out["stats"] = lifecycle::stats_json(isolation::read_cgroup_stats(e->cgroup_path));
            if (!e->final_event.is_null()) out["final"] = e->final_event.get();
            co_await res.send_json(200, out);
            co_return;
        }
        if (m != "DELETE") co_return co_await method_not_allowed();
        bool force = req.query.count("force") && (req.query.at("force") == "true" || req.query.at("force") == "1");
        if (e->phase == Phase::Starting || e->phase == Phase::Running) {
            if (!force) {
                co_await res.send_error(409, "sandbox " + id.substr(0, 12) + " is " + phase_name(e->phase) +
                                                 "; stop it first or remove with force=true");
                co_return;
            }
            if (e->removing) {
                co_await res.send_error(409, "sandbox " + id.substr(0, 12) + " is already being removed");
                co_return;
            }
            e->removing = true;
            if (e->phase == Phase::Starting) co_await e->started.wait();
            if (Entry* cur = still(); cur && cur->phase == Phase::Running) {
                if (!cur->cgroup_path.empty()) (void)io::write_file(cur->cgroup_path + "/cgroup.kill", "1");
                else (void)send_signal(*cur, SIGKILL);
                co_await cur->exited.wait();
            }
        }
        if (still()) forget(id);
        co_await res.send_empty(204);
        co_return;
    }
    if (action == "start") {
        if (m != "POST") co_return co_await method_not_allowed();
        if (e->phase != Phase::Created) {
            co_await res.send_error(409, "sandbox " + id.substr(0, 12) + " is " + phase_name(e->phase) + ", not created");
            co_return;
        }
        auto st = co_await start(*e);
        Entry* cur = still();
        if (!st || !cur) {
            co_await res.send_error(500, "starting sandbox " + id.substr(0, 12) + ": " +
                                             (st ? std::string("removed while starting") : st.error().describe()));
            co_return;
        }
        co_await res.send_json(200, sandbox_json(*cur));
        co_return;
    }
    if (action == "wait") {
        if (m != "POST") co_return co_await method_not_allowed();
        std::optional<double> timeout;
        if (auto it = req.query.find("timeout"); it != req.query.end()) {
            auto t = parse_seconds(it->second, "timeout");
            if (!t) co_return (void)co_await res.send_error(400, t.error().describe());
            timeout = *t;
        }
        if (e->phase == Phase::Created) {
            co_await res.send_error(409, "sandbox " + id.substr(0, 12) + " has not been started");
            co_return;
        }
        bool exited = false;
        co_await wait_exit(*e, timeout, res, exited);
        Entry* cur = still();
        if (res.is_client_gone()) co_return;
        if (!cur) co_return (void)co_await res.send_error(404, "sandbox " + id.substr(0, 12) + " was removed");
        if (!exited) co_return (void)co_await res.send_error(408, "sandbox " + id.substr(0, 12) + " still running after the timeout");
        json body = {{"exit_code", cur->exit_code ? json(*cur->exit_code) : json(nullptr)},
                     {"signal", cur->signal ? json(*cur->signal) : json(nullptr)},
                     {"reason", cur->reason}};
        co_await res.send_json(200, body);
        co_return;
    }
    if (action == "logs") {
        if (m != "GET") co_return co_await method_not_allowed();
        co_await logs(*e, req, res);
        co_return;
    }
    if (action == "kill") {
        if (m != "POST") co_return co_await method_not_allowed();
        int sig = SIGKILL;
        if (auto it = req.query.find("signal"); it != req.query.end()) {
            auto s = parse_signal(it->second);
            if (!s) co_return (void)co_await res.send_error(400, s.error().describe());
            sig = *s;
        }
        if (auto st = send_signal(*e, sig); !st) {
            co_await res.send_error(st.error().code == ESRCH ? 409 : 500, st.error().describe());
            co_return;
        }
        co_await res.send_empty(204);
        co_return;
    }
    if (action == "stop") {
        if (m != "POST") co_return co_await method_not_allowed();
        double grace = 10;
        if (auto it = req.query.find("timeout"); it != req.query.end()) {
            auto t = parse_seconds(it->second, "timeout");
            if (!t) co_return (void)co_await res.send_error(400, t.error().describe());
            grace = *t;
        }
        if (e->phase == Phase::Starting) co_await e->started.wait();
        Entry* cur = still();
        if (cur && cur->phase == Phase::Running) {
            (void)send_signal(*cur, SIGTERM);
            bool exited = false;
            co_await wait_exit(*cur, grace, res, exited);
            cur = still();
            if (cur && !exited && cur->phase == Phase::Running) {
                if (!cur->cgroup_path.empty()) (void)io::write_file(cur->cgroup_path + "/cgroup.kill", "1");
                else (void)send_signal(*cur, SIGKILL);
                co_await (cur->exited.wait() || res.client_gone());
                cur = still();
            }
        }
        if (res.is_client_gone()) co_return;
        if (!cur) co_return (void)co_await res.send_error(404, "sandbox " + id.substr(0, 12) + " was removed");
        co_await res.send_json(200, sandbox_json(*cur));
        co_return;
    }
    if (action == "exec") {
        if (m != "POST") co_return co_await method_not_allowed();
        co_await exec(*e, req, res);
        co_return;
    }
    if (action == "stats") {
        if (m != "GET") co_return co_await method_not_allowed();
        if (e->phase != Phase::Running || e->cgroup_path.empty()) {
            co_await res.send_error(409, "sandbox " + id.substr(0, 12) + " has no live cgroup (state " +
                                             phase_name(e->phase) + ")");
            co_return;
        }
        json out = lifecycle::stats_json(isolation::read_cgroup_stats(e->cgroup_path));
        out["limit_events"] = lifecycle::counts_json(isolation::read_cgroup_event_counts(e->cgroup_path));
        co_await res.send_json(200, out);
        co_return;
    }
    co_await res.send_error(404, "no such endpoint: " + path + " (see docs/API.md)");
}

void Daemon::shutdown() { stopping_ = true; events_signal_.notify(); }

Result<gid_t> group_id(const std::string& name) {
    char* end = nullptr;
    long n = std::strtol(name.c_str(), &end, 10);
    if (!name.empty() && *end == '\0' && n >= 0) return static_cast<gid_t>(n);
    auto groups = io::read_file("/etc/group", 4 << 20);
    if (groups) {
        std::istringstream lines(*groups);
        for (std::string line; std::getline(lines, line);) {
            auto a = line.find(':'), b = line.find(':', a + 1), c = line.find(':', b + 1);
            if (a == std::string::npos || c == std::string::npos) continue;
            if (line.compare(0, a, name) == 0 && a == name.size()) return static_cast<gid_t>(std::strtoul(line.c_str() + b + 1, nullptr, 10));
        }
    }
    return Error::plain("--socket-group: no group '" + name + "' in /etc/group");
}

}  // namespace

namespace {

// Flags over the environment, validated before anything starts.
Status configure_bridge(const std::string& name, const std::string& subnet, const std::string& subnet6) {
    auto env = [](const char* key, const std::string& flag) {
        const char* v = std::getenv(key);
        return !flag.empty() ? flag : v ? std::string(v) : std::string();
    };
    auto c = net::make_bridge_config(env("NUCLEUS_BRIDGE", name), env("NUCLEUS_BRIDGE_SUBNET", subnet),
                                     env("NUCLEUS_BRIDGE_SUBNET6", subnet6));
    if (!c) return std::move(c).error().wrap("--bridge, --bridge-subnet or --bridge-subnet6");
    net::set_runtime_bridge_config(std::move(*c));
    return {};
}

}  // namespace

int daemon_main(int argc, char** argv) {
    CLI::App app{"Supervise sandboxes for API clients (docs/API.md), on one reactor thread", "nucleus daemon"};
    DaemonConfig config;
    app.add_option("--socket", config.socket, "The API's unix socket")->capture_default_str();
    app.add_option("--state-dir", config.state_dir, "Sandbox records (re-adopted after a restart)")->capture_default_str();
    app.add_option("--log-dir", config.log_dir, "Sandbox output logs (default: STATE-DIR/logs)");
    app.add_option("--socket-group", config.socket_group, "Group allowed to use the socket (mode 0660)");
    app.add_option("--log-max-bytes", config.log_max_bytes, "Per stream cap before rotation (one old file kept)")
        ->capture_default_str();
    app.add_option("--max-sandboxes", config.max_sandboxes, "Sandboxes held at once (more get 429)")->capture_default_str();
    app.add_option("--keep-exited", config.keep_exited, "Exited sandboxes kept for inspect before the oldest go")
        ->capture_default_str();
    // --network bridge's runtime-wide settings (net/bridge_config.hpp).
    std::string bridge, bridge_subnet, bridge_subnet6;
    app.add_option("--bridge", bridge, "Bridge of --network bridge sandboxes (default $NUCLEUS_BRIDGE or nucleus0)");
    app.add_option("--bridge-subnet", bridge_subnet, "Its IPv4 subnet (default $NUCLEUS_BRIDGE_SUBNET or 10.201.0.0/16)");
    app.add_option("--bridge-subnet6", bridge_subnet6,
                   "Its IPv6 subnet, or none (default $NUCLEUS_BRIDGE_SUBNET6 or fd4e:7563:6c65::/64)");
    try {
        app.parse(argc - 1, argv + 1);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::fprintf(stderr, "nucleus: error: %s\nSee 'nucleus daemon --help'.\n", e.what());
        return exit_runtime_error;
    }
    if (config.log_dir.empty()) config.log_dir = config.state_dir + "/logs";
    if (auto st = configure_bridge(bridge, bridge_subnet, bridge_subnet6); !st) {
        std::fprintf(stderr, "nucleus: error: %s\n", st.error().describe().c_str());
        return exit_runtime_error;
    }
    if (config.log_max_bytes < 4096) {
        std::fprintf(stderr, "nucleus: error: --log-max-bytes must be at least 4096\n");
        return exit_runtime_error;
    }
    std::optional<gid_t> group;
    if (!config.socket_group.empty()) {
        auto g = group_id(config.socket_group);
        if (!g) {
            std::fprintf(stderr, "nucleus: error: %s\n", g.error().describe().c_str());
            return exit_runtime_error;
        }
        group = *g;
    }
    if (auto st = io::check_io_uring(); !st) {
        std::fprintf(stderr, "nucleus: error: %s\n", st.error().describe().c_str());
        return exit_runtime_error;
    }
    // Thousands of sandboxes hold a pidfd, two pipes and a cgroup fd each.
    rlimit nofile{};
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &nofile);
    }
    std::error_code ec;
    for (const auto& dir : {config.state_dir, config.state_dir + "/daemon", config.state_dir + "/sandboxes", config.log_dir}) {
        std::filesystem::create_directories(dir, ec);
        if (ec) {
            std::fprintf(stderr, "nucleus: error: creating %s: %s\n", dir.c_str(), ec.message().c_str());
            return exit_runtime_error;
        }
        ::chmod(dir.c_str(), 0700);
    }
    std::filesystem::create_directories(std::filesystem::path(config.socket).parent_path(), ec);
    auto paths = prepare_runtime_paths();
    if (!paths) {
        std::fprintf(stderr, "nucleus: error: %s\n", paths.error().describe().c_str());
        return exit_runtime_error;
    }
    // Staging and id leases are shared with `nucleus run`; cleanup records
    // are the daemon's own, out of reach of `nucleus run`'s gc.
    paths->sandboxes = config.state_dir + "/sandboxes";

    io::set_ring_entries(4096);
    ::signal(SIGPIPE, SIG_IGN);
    auto reactor = io::make_reactor();
    auto server = io::http::Server::listen(reactor.get_executor(), config.socket, 0660, group);
    if (!server) {
        std::fprintf(stderr, "nucleus: error: %s\n", server.error().describe().c_str());
        return exit_runtime_error;
    }
    Daemon daemon(reactor, config, *paths);
    if (auto st = daemon.recover(); !st) {
        std::fprintf(stderr, "nucleus: error: recovering sandboxes: %s\n", st.error().describe().c_str());
        return exit_runtime_error;
    }
    asio::signal_set stop_signals(reactor, SIGINT, SIGTERM);
    bool signalled = false;
    stop_signals.async_wait([&](const std::error_code& err, int) {
        if (err) return;
        signalled = true;
        // Sandboxes keep running: a restarted daemon re-adopts them. Long
        // requests (wait, follow, events) are not waited for: the reactor
        // stops after one more turn, in which the server closes its
        // connections, and the process exits with every record current.
        daemon.shutdown();
        server->stop();
        asio::post(reactor, [&] { reactor.stop(); });
    });
    bool served = false;
    asio::co_spawn(reactor, server->serve([&daemon](const io::http::Request& req, io::http::Responder& res) {
        return daemon.handle(req, res);
    }), [&](std::exception_ptr) {
        served = true;
        reactor.stop();  // supervision tasks are abandoned, not cancelled: their sandboxes live on
    });
    std::fprintf(stderr, "nucleus daemon: listening on %s (state %s, logs %s)\n", config.socket.c_str(),
                 config.state_dir.c_str(), config.log_dir.c_str());
    reactor.run();
    // Supervision coroutines still hold sandboxes that live on; nothing is
    // torn down on the way out (records are current), so skip destructors
    // that would cancel them into a stopped reactor.
    std::fflush(nullptr);
    std::_Exit(served || signalled ? 0 : exit_runtime_error);
}

}  // namespace nucleus::core
