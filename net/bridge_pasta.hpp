// `--network bridge` for a non-root caller: pasta (Debian's `passt`
// package) connects the sandbox's network namespace to the host's network
// from user space, with no bridge, veth or nftables (which need root):
// a tap device inside, configured like the host's interface (--config-net),
// outbound connections made from the host by pasta, published ports bound
// on the host by pasta and forwarded in.
//
//   pasta --config-net --foreground --quiet --no-map-gw -T none -U none
//         -t ADDR/HOST:CONTAINER ... (or -t none)  -u ... (or -u none)
//         -P /dev/fd/3  PID
//
// --no-map-gw keeps the gateway address from reaching the host's own
// loopback services, and -T/-U none forward none of the host's loopback
// ports into the sandbox; without -t/-u, pasta would forward every port
// the sandbox binds ("auto").
//
// pasta runs as our child, in the foreground, with PR_SET_PDEATHSIG
// (SIGKILL): it does not notice its target process exiting (it watches
// /proc/PID/ns with inotify, which procfs never signals) and would keep the
// namespace alive, so the supervisor kills it at teardown, and the kernel
// kills it when the supervising thread dies. Readiness: pasta writes its
// pid file (-P) once the namespace is configured; the file is the write
// end of a pipe we read.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "io/process.hpp"
#include "net/nat.hpp"

namespace nucleus::net {

struct PastaPlan {
    std::string binary;
    std::vector<PublishedPort> publish;
};

// Finds pasta on PATH; refuses, saying what to install, when it is not there.
Result<PastaPlan> plan_pasta(const std::vector<PublishedPort>& publish);

// Its arguments, for the sandbox whose first process is `pid`, with the
// readiness pipe at descriptor 3.
std::vector<std::string> pasta_arguments(const PastaPlan& plan, pid_t pid);

// Starts pasta and completes once it has configured the namespace, or with
// its own error message if it exits first (at most 30 s).
asio::awaitable<Result<io::ProcessHandle>> start_pasta(PastaPlan plan, pid_t pid);

// SIGKILL and reap.
asio::awaitable<void> stop_pasta(io::ProcessHandle process);

}  // namespace nucleus::net
