// POST /v1/sandboxes/{id}/exec: a further process in a running sandbox
// (isolation/join.hpp), its output collected (bounded) and answered as
// bytes: a string when UTF-8, else {"base64": ...} (docs/API.md, "Bytes").
#include <fcntl.h>
#include <signal.h>

#include <cstring>

#include <asio/as_tuple.hpp>
#include <asio/buffer.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "core/daemon/api.hpp"
#include "core/daemon/daemon.hpp"
#include "io/bytes_json.hpp"
#include "io/process.hpp"
#include "isolation/join.hpp"
#include "isolation/join_plan.hpp"

namespace nucleus::core::daemon::api {

using nlohmann::json;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr size_t output_cap = 1 << 20;  // per stream

struct ExecRequest {
    std::vector<std::string> command;
    std::vector<std::string> env;
    std::string workdir;
};

Status read_byte_list(const json& body, const char* key, std::vector<std::string>& out) {
    auto it = body.find(key);
    if (it == body.end()) return {};
    if (!it->is_array()) return Error::plain(std::string(key) + " must be an array of strings");
    for (const auto& item : *it) {
        auto bytes = io::bytes_from_json(item, key);
        if (!bytes) return std::move(bytes).error();
        if (bytes->find('\0') != std::string::npos)
            return Error::plain(std::string(key) + ": an entry holds a NUL byte");
        out.push_back(std::move(*bytes));
    }
    return {};
}

Result<ExecRequest> read_exec_request(const std::string& text) {
    json body = json::parse(text, nullptr, false);
    if (body.is_discarded() || !body.is_object())
        return Error::plain(
            "the body must be a JSON object: {\"command\": [...], \"env\": [...], \"workdir\": \"...\"}");
    for (const auto& [key, value] : body.items())
        if (key != "command" && key != "env" && key != "workdir")
            return Error::plain("unknown field '" + key + "' (command, env, workdir)");
    ExecRequest req;
    NUCLEUS_TRY(read_byte_list(body, "command", req.command));
    NUCLEUS_TRY(read_byte_list(body, "env", req.env));
    if (req.command.empty() || req.command[0].empty()) return Error::plain("command must name a program");
    for (const auto& kv : req.env)
        if (kv.find('=') == std::string::npos || kv.front() == '=')
            return Error::plain("env entries are KEY=VALUE, got '" + kv + "'");
    if (auto it = body.find("workdir"); it != body.end()) {
        auto dir = io::bytes_from_json(*it, "workdir");
        if (!dir || dir->empty() || (*dir)[0] != '/' || dir->find('\0') != std::string::npos)
            return Error::plain("workdir must be an absolute path");
        req.workdir = std::move(*dir);
    }
    return req;
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

struct ExecPipes {
    io::PipePair out, err;
    io::unique_fd devnull;
    io::unique_fd cgroup;  // O_PATH, for CLONE_INTO_CGROUP
};

Result<ExecPipes> open_exec_fds(const Entry& e) {
    auto out = io::make_pipe();
    auto err = io::make_pipe();
    auto devnull = io::open_fd("/dev/null", O_RDONLY);
    if (!out || !err || !devnull) return Error::from_errno("creating pipes for exec");
    ExecPipes fds{std::move(*out), std::move(*err), std::move(*devnull), {}};
    if (!e.record.cgroup_path.empty()) {
        if (auto cgroup = io::open_fd(e.record.cgroup_path, O_PATH | O_DIRECTORY)) fds.cgroup = std::move(*cgroup);
    }
    return fds;
}

isolation::JoinRequest join_request(const Entry& e, const ExecRequest& req, const ExecPipes& fds) {
    isolation::JoinRequest join;
    join.target_pidfd = e.live.pidfd.get();
    join.target_pid = e.record.pid.value_or(-1);
    join.cgroup_fd = fds.cgroup.valid() ? fds.cgroup.get() : -1;
    join.plan = e.live.plan.get();
    join.argv = req.command;
    if (!req.env.empty()) join.env = req.env;
    join.workdir = req.workdir;
    join.stdio[0] = fds.devnull.get();
    join.stdio[1] = fds.out.write.get();
    join.stdio[2] = fds.err.write.get();
    return join;
}

int failure_status(const isolation::JoinFailure& failure) {
    if (failure.step != static_cast<uint32_t>(isolation::JoinStep::Exec)) return 500;
    return failure.child_errno == ENOENT ? 404 : 400;
}

}  // namespace

asio::awaitable<void> exec(Daemon& d, Call& call) {
    auto& res = call.res;
    auto req = read_exec_request(call.req.body);
    if (!req) co_return (void) co_await res.send_error(400, req.error().message);
    Entry& e = *call.entry;
    if (e.record.phase != Phase::Running || !e.live.plan || !e.live.pidfd)
        co_return (void) co_await res.send_error(
            409, "sandbox " + call.id.substr(0, 12) + " is " + phase_name(e.record.phase) +
                     (e.record.adopted ? " (re-adopted: exec needs the plan of a sandbox this daemon started)" : ""));
    auto fds = open_exec_fds(e);
    if (!fds) co_return (void) co_await res.send_error(500, fds.error().describe());
    // The run task waits for this count to reach 0 before it frees the plan.
    ++e.live.execs;
    isolation::JoinFailure failure;
    auto joined = co_await isolation::spawn_joined(join_request(e, *req, *fds), &failure);
    fds->out.write.reset();
    fds->err.write.reset();
    if (!joined) {
        --e.live.execs;
        e.live.output.notify();
        co_return (void) co_await res.send_error(failure_status(failure), joined.error().describe());
    }
    io::ProcessHandle process = std::move(*joined);
    d.publish(
        {{"event", "exec"}, {"id", call.id}, {"pid", process.pid()}, {"command", io::bytes_json_array(req->command)}});
    auto ex = co_await asio::this_coro::executor;
    std::string out, err;
    bool out_cut = false, err_cut = false;
    asio::posix::stream_descriptor out_pipe(ex, fds->out.read.release()), err_pipe(ex, fds->err.read.release());
    auto finished = co_await ((process.wait_exit() && collect(std::move(out_pipe), out, output_cap, out_cut) &&
                               collect(std::move(err_pipe), err, output_cap, err_cut)) ||
                              res.client_gone());
    if (finished.index() == 1) {  // the client left: the process goes too
        (void)process.send_signal(SIGKILL);
        (void)co_await process.wait_exit();
    }
    --e.live.execs;  // the entry outlives this: its run task waits for execs
    e.live.output.notify();
    if (finished.index() == 1) co_return;
    auto& status = std::get<0>(finished);  // (&& drops the void results)
    if (!status) co_return (void) co_await res.send_error(500, status.error().describe());
    json reply = {{"exit_code", status->shell_code()},
                  {"signal", status->signaled ? json(status->value) : json(nullptr)},
                  {"stdout", io::bytes_json(out)},
                  {"stderr", io::bytes_json(err)},
                  {"truncated", out_cut || err_cut}};
    co_await res.send_json(200, reply);
}

}  // namespace nucleus::core::daemon::api
