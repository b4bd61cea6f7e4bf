// The reactor: one thread, one asio::io_context on io_uring.
//
// Built with ASIO_HAS_IO_URING and ASIO_DISABLE_EPOLL, so every descriptor
// wait, timer and signal goes through io_uring completions: an idle reactor
// makes no wake-ups. Coroutines are asio::awaitable tasks owned by whoever
// co_awaits them; nothing is co_spawned detached (see docs/ARCHITECTURE.md).
#pragma once

#include <asio/io_context.hpp>

#include "io/error.hpp"

namespace nucleus::io {

// Probes io_uring once at start-up, before any io_context exists, and names
// the cause when it is unavailable: kernel.io_uring_disabled, a seccomp
// filter (e.g. Docker's default profile returns EPERM for io_uring_setup), or
// a kernel built without it.
Status check_io_uring();

// A single-threaded io_context (concurrency hint 1: no locking on the hot path).
inline asio::io_context make_reactor() { return asio::io_context(1); }

// Creates the io_context's ring now, instead of at its first operation, and
// names the cause when it cannot (as check_io_uring() does). One ring where
// check_io_uring() and then the io_context's first operation make two: a
// `nucleus run` saves an io_uring_setup and its populated mappings.
Status start_io_uring(asio::io_context& reactor);

// Asio sizes its ring at a fixed 16384 entries (asio/detail/io_uring_service.hpp),
// about 1.1-1.7 ms of io_uring_setup and 590 KB of populated memory on every
// `nucleus run`, which has a handful of operations in flight. The link wraps
// io_uring_queue_init (-Wl,--wrap, see io/CMakeLists.txt) so every ring is
// capped at this many entries. Asio submits and retries when the submission
// queue is full, and the kernel keeps overflowing completions
// (IORING_FEAT_NODROP), so a smaller ring costs batching, never correctness.
// Set before the io_context is made; the daemon uses a larger value.
void set_ring_entries(unsigned entries);
unsigned ring_entries();

}  // namespace nucleus::io
