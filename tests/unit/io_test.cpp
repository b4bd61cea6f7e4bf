#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <catch2/catch_test_macros.hpp>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "io/process.hpp"
#include "io/pump.hpp"
#include "io/reactor.hpp"
#include "io/unique_fd.hpp"

using namespace nucleus;

extern char** environ;

namespace {

io::ProcessHandle spawn(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = -1;
    REQUIRE(::posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) == 0);
    auto fd = io::pidfd_open(pid);
    REQUIRE(fd);
    return io::ProcessHandle(pid, std::move(*fd));
}

template <class T>
asio::awaitable<void> store_result(asio::awaitable<T> task, std::optional<T>* out) {
    out->emplace(co_await std::move(task));
}

template <class T>
T run_on_reactor(asio::awaitable<T> task) {
    auto ctx = io::make_reactor();
    std::optional<T> result;
    asio::co_spawn(ctx, store_result(std::move(task), &result), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    ctx.run();
    REQUIRE(result);
    return std::move(*result);
}

}  // namespace

TEST_CASE("unique_fd closes on destruction and transfers on move") {
    int raw;
    {
        auto pipe = io::make_pipe();
        REQUIRE(pipe);
        raw = pipe->read.get();
        CHECK(::fcntl(raw, F_GETFD) & FD_CLOEXEC);
        io::unique_fd moved = std::move(pipe->read);
        CHECK_FALSE(pipe->read.valid());
        CHECK(moved.get() == raw);
    }
    CHECK(::fcntl(raw, F_GETFD) == -1);
}

TEST_CASE("read_file is bounded") {
    auto small = io::read_file("/proc/self/status", 1 << 20);
    REQUIRE(small);
    CHECK(small->find("Pid:") != std::string::npos);
    auto bounded = io::read_file("/proc/self/status", 16);
    REQUIRE_FALSE(bounded);
    CHECK(bounded.error().message.find("larger than 16 bytes") != std::string::npos);
}

TEST_CASE("io_uring is available to this test process") { CHECK(io::check_io_uring().ok()); }

TEST_CASE("a process's exit is awaited through its pidfd on the reactor") {
    auto status = run_on_reactor([]() -> asio::awaitable<Result<io::ExitStatus>> {
        auto child = spawn({"/bin/sh", "-c", "exit 7"});
        co_return co_await child.wait_exit();
    }());
    REQUIRE(status);
    CHECK_FALSE(status->signaled);
    CHECK(status->shell_code() == 7);
}

TEST_CASE("a signalled process reports 128+N") {
    auto status = run_on_reactor([]() -> asio::awaitable<Result<io::ExitStatus>> {
        auto child = spawn({"/bin/sleep", "30"});
        REQUIRE(child.send_signal(SIGTERM));
        co_return co_await child.wait_exit();
    }());
    REQUIRE(status);
    CHECK(status->signaled);
    CHECK(status->shell_code() == 128 + SIGTERM);
}

TEST_CASE("pump copies a pipe into a file sink until EOF") {
    char path[] = "/tmp/nucleus-pump-XXXXXX";
    int tmp = ::mkstemp(path);
    REQUIRE(tmp >= 0);
    ::close(tmp);
    auto pipe = io::make_pipe();
    REQUIRE(pipe);
    std::string payload(300 * 1024, 'x');
    // A writer process, so the pipe fills beyond its 64 KiB buffer.
    auto result = run_on_reactor([](io::PipePair p, std::string file, size_t size) -> asio::awaitable<io::PumpResult> {
        auto ex = co_await asio::this_coro::executor;
        auto sink = io::OutputSink::log_file(ex, file);
        REQUIRE(sink);
        pid_t pid = ::fork();
        if (pid == 0) {
            std::string data(size, 'x');
            (void)io::write_all(p.write.get(), data);
            ::_exit(0);
        }
        p.write.reset();
        auto r = co_await io::pump(asio::posix::stream_descriptor(ex, p.read.release()), *sink);
        int st;
        ::waitpid(pid, &st, 0);
        co_return r;
    }(std::move(*pipe), path, payload.size()));
    CHECK(result.status.ok());
    CHECK(result.bytes == payload.size());
    auto written = io::read_file(path, 1 << 20);
    REQUIRE(written);
    CHECK(*written == payload);
    ::unlink(path);
}

TEST_CASE("pump_shared writes a flood into a capped rotating log that appears at the first write") {
    char dir[] = "/tmp/nucleus-rotate-XXXXXX";
    REQUIRE(::mkdtemp(dir));
    const std::string path = std::string(dir) + "/out.log";
    const uint64_t cap = 16384;
    auto sink = io::OutputSink::rotating_log(path, cap);
    CHECK(::access(path.c_str(), F_OK) != 0);  // no output yet: no file

    auto pipe = io::make_pipe();
    REQUIRE(pipe);
    const size_t total = 1 << 20;  // 64x the cap, more than the pipe holds
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::string data(total, 'y');
        (void)io::write_all(pipe->write.get(), data);
        ::_exit(0);
    }
    pipe->write.reset();
    auto ctx = io::make_reactor();
    asio::posix::stream_descriptor source(ctx, pipe->read.release());
    std::optional<io::PumpResult> result;
    int calls = 0;
    io::pump_shared(source, sink, [&](io::PumpResult r) {
        ++calls;
        result = std::move(r);
    });
    ctx.run();
    int st = 0;
    ::waitpid(pid, &st, 0);

    REQUIRE(result);
    CHECK(calls == 1);
    CHECK(result->status.ok());
    CHECK(result->bytes == total);
    struct stat current {
    }, previous{};
    REQUIRE(::stat(path.c_str(), &current) == 0);
    REQUIRE(::stat((path + ".1").c_str(), &previous) == 0);
    // Never more than two files of at most `cap` bytes, whatever was written.
    CHECK(static_cast<uint64_t>(current.st_size) <= cap);
    CHECK(static_cast<uint64_t>(previous.st_size) == cap);
    CHECK(total % cap == static_cast<uint64_t>(current.st_size) % cap);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    CHECK(!ec);
}
