#include "io/pump.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <array>

#include <asio/as_tuple.hpp>
#include <asio/buffer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace nucleus::io {

Result<OutputSink> OutputSink::adopt(asio::any_io_executor executor, unique_fd fd) {
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return Error::from_errno("fstat output");
    OutputSink sink;
    if (S_ISREG(st.st_mode)) {
        sink.file_ = std::move(fd);
    } else {
        sink.stream_.emplace(executor, fd.release());
    }
    return sink;
}

Result<OutputSink> OutputSink::log_file(asio::any_io_executor executor, const std::string& path) {
    auto fd = open_fd(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0640);
    if (!fd) return std::move(fd).error().wrap("opening log file");
    return adopt(std::move(executor), std::move(*fd));
}

asio::awaitable<Status> OutputSink::write(std::span<const char> bytes) {
    if (file_) co_return write_all(file_.get(), {bytes.data(), bytes.size()});
    auto [ec, n] = co_await asio::async_write(*stream_, asio::buffer(bytes.data(), bytes.size()),
                                              asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec) co_return Error{ec.value(), "writing output"};
    co_return Status{};
}

asio::awaitable<PumpResult> pump(asio::posix::stream_descriptor source, OutputSink& sink) {
    std::array<char, 64 * 1024> buffer;
    PumpResult result;
    for (;;) {
        auto [ec, n] = co_await source.async_read_some(asio::buffer(buffer),
                                                       asio::as_tuple(asio::use_awaitable));
        if (ec == asio::error::eof) break;
        if (ec) {
            if (result.status.ok()) result.status = Error{ec.value(), "reading sandbox output"};
            break;
        }
        result.bytes += n;
        auto written = co_await sink.write({buffer.data(), n});
        if (!written) {
            // Our reader is gone (EPIPE): close the sandbox's pipe too, so
            // its writer gets EPIPE as in any Unix pipeline.
            result.status = std::move(written).error();
            break;
        }
    }
    co_return result;
}

}  // namespace nucleus::io
