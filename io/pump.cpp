#include "io/pump.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
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

OutputSink OutputSink::rotating_log(const std::string& path, uint64_t max_bytes) {
    OutputSink sink;
    sink.path_ = path;
    sink.max_bytes_ = max_bytes;
    sink.lazy_ = true;
    return sink;
}

Status OutputSink::open_lazily() {
    auto fd = open_fd(path_, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0640);
    if (!fd) return std::move(fd).error().wrap("opening log file");
    struct stat st {};
    if (::fstat(fd->get(), &st) < 0) return Error::from_errno("fstat " + path_);
    if (!S_ISREG(st.st_mode)) return Error::plain("log " + path_ + " is not a regular file");
    file_ = std::move(*fd);
    size_ = static_cast<uint64_t>(st.st_size);
    lazy_ = false;
    return {};
}

Status OutputSink::rotate() {
    std::string old = path_ + ".1";
    if (::rename(path_.c_str(), old.c_str()) < 0) return Error::from_errno("rotating " + path_);
    auto fd = open_fd(path_, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_TRUNC, 0640);
    if (!fd) return std::move(fd).error().wrap("rotating log");
    file_ = std::move(*fd);
    size_ = 0;
    return {};
}

Status OutputSink::write_file(std::span<const char> bytes) {
    if (lazy_)
        if (auto st = open_lazily(); !st) return st;
    if (!file_) return Error::plain("output sink is not a file");
    if (max_bytes_) {
        while (!bytes.empty()) {
            if (size_ >= max_bytes_)
                if (auto st = rotate(); !st) return st;
            size_t room = static_cast<size_t>(std::min<uint64_t>(max_bytes_ - size_, bytes.size()));
            if (auto st = write_all(file_.get(), {bytes.data(), room}); !st) return st;
            size_ += room;
            bytes = bytes.subspan(room);
        }
        if (on_write_) on_write_();
        return {};
    }
    auto st = write_all(file_.get(), {bytes.data(), bytes.size()});
    if (st && on_write_) on_write_();
    return st;
}

asio::awaitable<Status> OutputSink::write(std::span<const char> bytes) {
    if (is_file()) co_return write_file(bytes);
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
        auto [ec, n] = co_await source.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
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

bool drain_shared(int fd, OutputSink& sink, PumpResult& result) {
    static thread_local std::array<char, 64 * 1024> buffer;
    for (int round = 0; round < 16; ++round) {
        ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return false;
        if (n < 0) {
            result.status = Error::from_errno("reading sandbox output");
            return true;
        }
        if (n == 0) return true;
        result.bytes += static_cast<uint64_t>(n);
        if (auto written = sink.write_file({buffer.data(), static_cast<size_t>(n)}); !written) {
            // Our reader is gone: close the sandbox's pipe too (see pump()).
            result.status = std::move(written).error();
            return true;
        }
        if (static_cast<size_t>(n) < buffer.size()) return false;
    }
    return false;  // still more: the next wait completes at once
}

}  // namespace nucleus::io
