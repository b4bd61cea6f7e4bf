// Endpoints that stream: a sandbox's logs (whole, tail, follow) and the
// event feed. Log bytes are sent as the sandbox wrote them. A log read
// once is sent from its file in chunks (Responder::send_file), so a client
// that asks for a large log and never reads costs a chunk, not the log.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/experimental/awaitable_operators.hpp>

#include "core/daemon/api.hpp"
#include "core/daemon/daemon.hpp"
#include "core/daemon/query.hpp"

namespace nucleus::core::daemon::api {

using namespace asio::experimental::awaitable_operators;

namespace {

constexpr const char* log_type = "text/plain";
// How far back tail=N looks for its lines.
constexpr off_t tail_window = 1 << 20;

// Where the last `n` lines of the file's last tail_window bytes begin (a
// final newline ends the last line rather than starting another); the
// window's start when it holds fewer lines.
off_t tail_offset(int fd, off_t size, uint64_t n) {
    const off_t floor = size - std::min(size, tail_window);
    off_t end = size;
    char last = 0;
    if (size > floor && ::pread(fd, &last, 1, size - 1) == 1 && last == '\n') end = size - 1;
    std::string block(16 << 10, '\0');
    uint64_t lines = 0;
    while (end > floor) {
        off_t begin = std::max(floor, end - static_cast<off_t>(block.size()));
        ssize_t got = ::pread(fd, block.data(), static_cast<size_t>(end - begin), begin);
        if (got != end - begin) return floor;
        for (off_t i = got; i > 0; --i)
            if (block[static_cast<size_t>(i - 1)] == '\n' && ++lines == n) return begin + i;
        end = begin;
    }
    return floor;
}

off_t file_size(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? st.st_size : 0;
}

struct LogQuery {
    std::string stream;
    std::optional<uint64_t> tail;
    bool follow = false;
};

Result<LogQuery> read_log_query(const io::http::Request& req) {
    LogQuery q;
    auto stream = query_choice(req, "stream", {"stdout", "stderr"}, "stdout");
    if (!stream) return std::move(stream).error();
    auto tail = query_count(req, "tail", 1000000, "all");
    if (!tail) return std::move(tail).error();
    auto follow = query_flag(req, "follow");
    if (!follow) return std::move(follow).error();
    return LogQuery{std::move(*stream), *tail, *follow};
}

// Follows the log from `offset` until the sandbox has exited and its
// output is drained, or the client goes. The file is reopened when the
// sink rotates it.
asio::awaitable<void> follow_log(Daemon& d, Call& call, const std::string& path, io::unique_fd fd, off_t offset) {
    auto& res = call.res;
    std::string chunk(64 << 10, '\0');
    for (;;) {
        // The entry may be removed while we follow: look it up each round.
        Entry* cur = d.table().get(call.id);
        if (!cur) break;
        bool exited = cur->record.phase == Phase::Exited;
        if (!fd) {
            if (auto opened = io::open_fd(path, O_RDONLY | O_NOFOLLOW)) fd = std::move(*opened);
        }
        if (fd) {
            struct stat st {};
            ::fstat(fd.get(), &st);
            if (st.st_nlink == 0 || st.st_size < offset) {  // rotated: continue in the new file
                fd.reset();
                offset = 0;
                continue;
            }
            for (ssize_t n; (n = ::pread(fd.get(), chunk.data(), chunk.size(), offset)) > 0;) {
                offset += n;
                if (!(co_await res.send_chunk({chunk.data(), static_cast<size_t>(n)}))) co_return;
            }
        }
        if (exited) break;
        co_await (cur->live.output.wait() || cur->live.exited.wait() || res.client_gone());
        if (res.is_client_gone()) co_return;
    }
    co_await res.end_stream();
}

}  // namespace

asio::awaitable<void> logs(Daemon& d, Call& call) {
    auto q = read_log_query(call.req);
    if (!q) co_return (void) co_await call.res.send_error(400, q.error().message);
    std::string path = d.log_path(*call.entry, q->stream.c_str());
    // Log files appear with the first output: none yet reads as empty.
    io::unique_fd fd;
    if (auto opened = io::open_fd(path, O_RDONLY | O_NOFOLLOW)) fd = std::move(*opened);
    off_t size = fd ? file_size(fd.get()) : 0;
    off_t offset = fd && q->tail ? tail_offset(fd.get(), size, *q->tail) : 0;
    if (q->follow) {
        if (!(co_await call.res.begin_stream(200, log_type))) co_return;
        co_await follow_log(d, call, path, std::move(fd), offset);
    } else if (!fd) {
        co_await call.res.send(200, log_type, "");
    } else {
        co_await call.res.send_file(200, log_type, fd.get(), offset, static_cast<size_t>(size - offset));
    }
}

asio::awaitable<void> events(Daemon& d, Call& call) {
    auto& res = call.res;
    if (!(co_await res.begin_stream(200, "application/x-ndjson"))) co_return;
    uint64_t next = d.events().next();
    const auto& recent = d.events().recent();
    for (;;) {
        // By number, not by iterator: the feed changes while a line is sent.
        while (!recent.empty() && next <= recent.back().first) {
            uint64_t first = recent.front().first;
            const auto& [seq, text] = recent[next < first ? 0 : next - first];
            std::string line = text;
            next = seq + 1;
            if (!(co_await res.send_chunk(line))) co_return;
        }
        if (d.stopping()) break;
        co_await (d.events().grew().wait() || res.client_gone());
        if (res.is_client_gone()) co_return;
    }
    co_await res.end_stream();
}

}  // namespace nucleus::core::daemon::api
