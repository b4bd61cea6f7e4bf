// A one-shot broadcast on the reactor: any number of coroutines wait; notify()
// wakes them all. Waiters wait on a timer that never expires by itself;
// notify() cancels it (a fresh wait is armed for later waiters). No
// polling, no wake-up while nothing happens.
#pragma once

#include <chrono>
#include <memory>

#include <asio/any_io_executor.hpp>
#include <asio/as_tuple.hpp>
#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

namespace nucleus::core::daemon {

class Broadcast {
public:
    explicit Broadcast(asio::any_io_executor ex)
        : timer_(std::make_unique<asio::steady_timer>(ex, asio::steady_timer::time_point::max())) {}

    asio::awaitable<void> wait() {
        auto* t = timer_.get();
        (void)co_await t->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    void notify() { timer_->cancel(); }

private:
    std::unique_ptr<asio::steady_timer> timer_;
};

}  // namespace nucleus::core::daemon
