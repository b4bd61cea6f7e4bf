#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <catch2/catch_test_macros.hpp>
#include <cstdlib>
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
