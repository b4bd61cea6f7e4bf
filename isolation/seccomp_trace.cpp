#include "isolation/seccomp_trace.hpp"

#include <linux/seccomp.h>
#include <poll.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <sstream>

#include <asio/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "io/unique_fd.hpp"
#include "isolation/seccomp.hpp"

namespace nucleus::isolation {

Result<std::vector<sock_filter>> compile_trace_filter(int report_fd) {
    SeccompPolicy policy;
    policy.default_action = {SeccompAction::Kind::Notify, 0};
    policy.rules.push_back({"write",
                            {SeccompAction::Kind::Allow, 0},
                            {{0, SeccompArgCondition::Op::Equal, static_cast<uint64_t>(report_fd), 0}}});
    return compile_seccomp(policy);
}

std::vector<std::string> SyscallTrace::names() const {
    std::vector<std::string> out;
    for (const auto& [nr, count] : counts_) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        out.push_back(name ? name : "syscall_" + std::to_string(nr));
        std::free(name);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Status SyscallTrace::write_ndjson(const std::string& path) const {
    std::string text;
    for (const auto& [nr, count] : counts_) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        nlohmann::json line = {
            {"syscall", name ? name : "syscall_" + std::to_string(nr)}, {"nr", nr}, {"count", count}};
        std::free(name);
        text += line.dump() + "\n";
    }
    auto fd = io::open_fd(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!fd) return std::move(fd).error().wrap("writing the seccomp trace");
    return io::write_all(fd->get(), text);
}

namespace {

// What the listener reports now, without waiting. SECCOMP_IOCTL_NOTIF_RECV
// sleeps until a notification arrives, so it is called only when POLLIN says
// one is pending: after the last task using the filter exits, the listener
// reports POLLHUP forever, and Linux 6.1 wakes a waiter with it while RECV
// would then sleep for good (on the reactor thread).
short listener_events(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 ? p.revents : 0;
}

}  // namespace

asio::awaitable<void> answer_notifications(int listener, SyscallTrace& trace) {
    auto ex = co_await asio::this_coro::executor;
    auto dup = io::dup_fd(listener);
    if (!dup) co_return;
    asio::posix::stream_descriptor watch(ex, dup->release());
    for (;;) {
        auto [ec] =
            co_await watch.async_wait(asio::posix::descriptor_base::wait_read, asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;  // cancelled: the sandbox has exited
        short events = listener_events(listener);
        if (!(events & POLLIN)) {
            if (events & POLLHUP) break;
            continue;  // woken with nothing pending
        }
        seccomp_notif request{};  // SECCOMP_IOCTL_NOTIF_RECV needs it zeroed
        if (::ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &request) < 0) continue;  // ENOENT: the task died meanwhile
        trace.add(request.data.nr);
        seccomp_notif_resp response{};
        response.id = request.id;
        response.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        (void)::ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &response);  // ENOENT: it died meanwhile
    }
    // Nothing left to answer; stay pending until the caller cancels us.
    asio::steady_timer never(ex, asio::steady_timer::time_point::max());
    (void)co_await never.async_wait(asio::as_tuple(asio::use_awaitable));
}

Result<std::vector<std::string>> read_trace(const std::string& path) {
    auto text = io::read_file(path, 16 << 20);
    if (!text) return std::move(text).error();
    std::vector<std::string> names;
    std::istringstream lines(*text);
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto record = nlohmann::json::parse(line, nullptr, false);
        std::string where = path + ":" + std::to_string(number);
        if (!record.is_object() || !record.contains("syscall") || !record["syscall"].is_string())
            return Error::plain(where + ": not a trace record ({\"syscall\": NAME, ...})");
        std::string name = record["syscall"];
        if (!seccomp_knows_syscall(name)) return Error::plain(where + ": unknown syscall \"" + name + "\"");
        names.push_back(name);
    }
    if (names.empty()) return Error::plain(path + ": the trace records no syscalls");
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

}  // namespace nucleus::isolation
