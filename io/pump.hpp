// Moving a sandbox's output from a pipe into a sink, through the reactor.
//
// The sandbox writes into a pipe; the reactor reads it with io_uring into a
// fixed buffer and hands each chunk to the sink. Nothing the sandbox writes
// is parsed or accumulated: memory use is one buffer per stream.
#pragma once

#include <cstdint>
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

    asio::awaitable<Status> write(std::span<const char> bytes);

private:
    OutputSink() = default;
    unique_fd file_;                                   // regular file: write(2)
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

}  // namespace nucleus::io
