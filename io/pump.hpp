// Moving a sandbox's output from a pipe into a sink, through the reactor.
//
// The sandbox writes into a pipe; the reactor reads it with io_uring into a
// fixed buffer and hands each chunk to the sink. Nothing the sandbox writes
// is parsed or accumulated: memory use is one buffer per stream.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include "io/unique_fd.hpp"

namespace nucleus::io {

// Where output goes. A regular file is written with write(2) (page-cache
// writes do not block on the reader; Asio file objects would hand them to
// kernel worker threads for no gain); anything else (a terminal, a pipe, a
// socket) is written asynchronously through io_uring so a slow reader never
// stalls the reactor.
class OutputSink {
public:
    // Takes ownership of fd.
    static Result<OutputSink> adopt(asio::any_io_executor executor, unique_fd fd);
    // Appends to (creates, mode 0640) a log file.
    static Result<OutputSink> log_file(asio::any_io_executor executor, const std::string& path);

    // A log file capped at `max_bytes`: when a write would pass the cap,
    // the file is renamed to PATH.1 (the previous PATH.1 is replaced) and a
    // new one started, so one stream never holds more than 2 x max_bytes on
    // disk whatever the sandbox writes. The file is created (appended to if
    // present) at the first write: a stream with no output costs no file.
    static OutputSink rotating_log(const std::string& path, uint64_t max_bytes);

    asio::awaitable<Status> write(std::span<const char> bytes);
    // The same for a regular-file sink, which never suspends.
    Status write_file(std::span<const char> bytes);
    bool is_file() const noexcept { return file_.valid() || lazy_; }
    // Called after every successful write (the daemon wakes log followers).
    void on_write(std::function<void()> callback) { on_write_ = std::move(callback); }

private:
    OutputSink() = default;
    Status rotate();
    Status open_lazily();
    unique_fd file_;  // regular file: write(2)
    bool lazy_ = false;  // rotating_log: file_ opens at the first write
    std::string path_;  // rotating logs only
    uint64_t max_bytes_ = 0;  // 0: no cap
    uint64_t size_ = 0;
    std::function<void()> on_write_;
    std::optional<asio::posix::stream_descriptor> stream_;  // everything else
};

struct PumpResult {
    uint64_t bytes = 0;
    Status status;  // the first read or write error, if any
};

// Reads `source` until EOF (all write ends closed) and copies into `sink`.
// A failing sink (its reader gone) ends the pump and closes `source`, so the
// sandbox's writer sees EPIPE rather than blocking on a full pipe.
asio::awaitable<PumpResult> pump(asio::posix::stream_descriptor source, OutputSink& sink);

// The same, for a supervisor of thousands of sandboxes, in callback form:
// waits for readability through io_uring, then reads (non-blocking) into one
// buffer shared by every pump on this thread, so an idle stream costs one
// pending wait: no buffer and no coroutine frame. Calls done(PumpResult)
// once, on the reactor, at EOF or on the first error. The sink must be a
// regular file (written synchronously, so the shared buffer is free again
// before the next wait); `source` and `sink` must outlive the pump.
template <typename Done>
void pump_shared(asio::posix::stream_descriptor& source, OutputSink& sink, Done done);

// One readiness wake-up of pump_shared: reads what `fd` holds (a flood
// yields after 1 MiB) into the shared buffer and writes it to the sink.
// True when the stream has ended (EOF or error, recorded in `result`).
bool drain_shared(int fd, OutputSink& sink, PumpResult& result);

template <typename Done>
void pump_shared(asio::posix::stream_descriptor& source, OutputSink& sink, Done done) {
    struct Op {
        asio::posix::stream_descriptor* source;
        OutputSink* sink;
        PumpResult result;
        Done done;
        void operator()(std::error_code ec) {
            if (ec) {
                result.status = Error{ec.value(), "waiting for sandbox output"};
                std::move(done)(std::move(result));
                return;
            }
            if (drain_shared(source->native_handle(), *sink, result)) {
                std::move(done)(std::move(result));
                return;
            }
            auto* s = source;
            s->async_wait(asio::posix::descriptor_base::wait_read, std::move(*this));
        }
    };
    source.non_blocking(true);
    source.async_wait(asio::posix::descriptor_base::wait_read, Op{&source, &sink, PumpResult{}, std::move(done)});
}

}  // namespace nucleus::io
