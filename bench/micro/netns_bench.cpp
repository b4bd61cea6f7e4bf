// What a network namespace costs a sandbox, and what --network bridge adds
// to it: a namespace made and dropped (the baseline, in the same run), then
// with a veth on a bridge and its addresses and routes (net/bridge.hpp's
// configure_sandbox_link, as a sandbox gets them), dropped as a sandbox's
// teardown drops it (deleting the veth, then the namespace) or left to the
// kernel's namespace clean-up. "teardown_us" is how long until the veth is
// gone when the kernel removes it with the namespace (its asynchronous
// cleanup_net work), measured by polling for the veth.
//
// Everything happens in a network namespace the benchmark makes for itself
// (its bridge, veths and sysctls never touch the machine's). Needs root.
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <optional>

#include "net/bridge.hpp"
#include "net/netlink_route.hpp"

using namespace nucleus;
using Clock = std::chrono::steady_clock;

namespace {

// A network namespace as a sandbox gets one: unshare(2) on this thread,
// keep an nsfs descriptor, go back. Closing the descriptor drops it.
io::unique_fd new_netns(int home) {
    if (::unshare(CLONE_NEWNET) < 0) return io::unique_fd();
    io::unique_fd ns(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (::setns(home, CLONE_NEWNET) < 0) std::abort();
    return ns;
}

// The benchmark's own "host" namespace for as long as it runs, with the
// default bridge in it.
struct BenchHost {
    io::unique_fd home;
    std::optional<net::BridgeConfig> config;
    int bridge_index = 0;
    std::string error;

    BenchHost() {
        home = io::unique_fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
        if (::geteuid() != 0) {
            error = "needs root";
            return;
        }
        if (::unshare(CLONE_NEWNET) < 0) {
            error = "unshare(CLONE_NEWNET) failed";
            return;
        }
        auto c = net::make_bridge_config("", "", "");
        auto rt = net::KernelNetlink::open(NETLINK_ROUTE);
        auto nf = net::KernelNetlink::open(NETLINK_NETFILTER);
        if (!c || !rt || !nf) {
            error = "netlink";
            return;
        }
        config = *c;
        char dir[] = "/tmp/nucleus-netns-bench-XXXXXX";
        state_ = ::mkdtemp(dir);
        net::NetlinkSession rs(*rt), ns(*nf);
        auto index = net::ensure_bridge(rs, ns, *config, state_);
        if (!index) error = index.error().describe();
        else bridge_index = *index;
    }
    ~BenchHost() {
        if (home) (void)::setns(home.get(), CLONE_NEWNET);
        if (!state_.empty()) std::system(("rm -rf " + state_).c_str());
    }

private:
    std::string state_;
};

bool link_exists(net::NetlinkSession& rt, const std::string& name) {
    std::vector<net::NetlinkMessage> one;
    one.push_back(net::rt::get_link(name));
    auto r = rt.execute(one);
    return r.ok();
}

void BM_Netns_CreateDrop_Baseline(benchmark::State& state) {
    BenchHost host;
    if (!host.error.empty()) {
        state.SkipWithError(host.error.c_str());
        return;
    }
    for (auto _ : state) {
        auto ns = new_netns(host.home.get());
        benchmark::DoNotOptimize(ns.get());
    }
}

// mode 0: delete the veth, then drop the namespace (what a sandbox's
// teardown does); mode 1: drop the namespace only and wait until the
// kernel has removed the veth with it.
void BM_Netns_WithVeth(benchmark::State& state) {
    BenchHost host;
    if (!host.error.empty()) {
        state.SkipWithError(host.error.c_str());
        return;
    }
    auto rt_socket = net::KernelNetlink::open(NETLINK_ROUTE);
    if (!rt_socket) {
        state.SkipWithError("netlink");
        return;
    }
    net::NetlinkSession rt(*rt_socket);
    const bool explicit_delete = state.range(0) == 0;
    double teardown_us = 0;
    uint32_t index = 2;
    for (auto _ : state) {
        auto ns = new_netns(host.home.get());
        auto inner_fd = net::netlink_socket_in(ns.get(), NETLINK_ROUTE);
        if (!inner_fd) {
            state.SkipWithError(inner_fd.error().describe().c_str());
            break;
        }
        auto inner_socket = net::KernelNetlink::adopt(std::move(*inner_fd));
        net::NetlinkSession inner(*inner_socket);
        auto address = host.config->plan.address(index++);
        auto st = net::configure_sandbox_link(rt, inner, *host.config, host.bridge_index, address, ns.get());
        if (!st) {
            state.SkipWithError(st.error().describe().c_str());
            break;
        }
        const std::string veth = net::host_veth_name(address);
        if (explicit_delete) (void)rt.execute(net::rt::delete_link(veth));
        *inner_socket = net::KernelNetlink();  // the inner socket holds the namespace too
        ns.reset();
        if (!explicit_delete) {
            auto dropped = Clock::now();
            while (link_exists(rt, veth)) ::usleep(100);
            teardown_us += std::chrono::duration<double, std::micro>(Clock::now() - dropped).count();
        }
    }
    if (!explicit_delete)
        state.counters["teardown_us"] = benchmark::Counter(teardown_us, benchmark::Counter::kAvgIterations);
}

}  // namespace

BENCHMARK(BM_Netns_CreateDrop_Baseline)->UseRealTime();
BENCHMARK(BM_Netns_WithVeth)->Arg(0)->ArgName("kernel_cleanup")->UseRealTime();
BENCHMARK(BM_Netns_WithVeth)->Arg(1)->ArgName("kernel_cleanup")->UseRealTime();
