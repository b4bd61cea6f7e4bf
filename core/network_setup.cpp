#include "core/network_setup.hpp"

#include <sys/socket.h>

#include "core/spec.hpp"
#include "net/dns_stub.hpp"
#include "net/egress_rules.hpp"

namespace nucleus::core {

namespace {

isolation::NetlinkScript script_of(const net::NetlinkMessages& m) {
    return isolation::NetlinkScript{m.protocol, m.bytes, m.length, m.acks};
}

}  // namespace

Status prepare_network(const SandboxSpec& spec, NetworkSetup& setup, isolation::LaunchRequest& request) {
    if (spec.network != net::NetworkMode::Egress) return {};
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return Error::from_errno("creating the egress socket channel");
    setup.channel.reset(pair[0]);
    setup.channel_child.reset(pair[1]);
    request.netlink_scripts = {script_of(net::egress_route_messages()), script_of(net::egress_nft_batch())};
    request.listen_sockets = net::egress_listen_sockets();
    request.network_channel_fd = setup.channel_child.get();
    request.resolv_conf = net::egress_resolv_conf();
    return {};
}

Status receive_network(NetworkSetup& setup) {
    if (!setup.channel) return {};
    setup.channel_child.reset();
    auto sockets = net::receive_egress_sockets(setup.channel.get());
    setup.channel.reset();
    if (!sockets) return std::move(sockets).error();
    setup.sockets = std::move(*sockets);
    return {};
}

std::shared_ptr<net::EgressService> serve_network(const SandboxSpec& spec, NetworkSetup& setup,
                                                  asio::any_io_executor executor,
                                                  std::shared_ptr<net::UpstreamResolver> resolver, EventLog* events,
                                                  const std::string& id) {
    if (spec.network != net::NetworkMode::Egress || !setup.sockets) return nullptr;
    net::EgressService::Options options;
    options.policy = spec.egress;
    options.owns_resolver = !resolver;
    options.resolver =
        resolver ? std::move(resolver) : std::make_shared<net::UpstreamResolver>(executor, net::host_resolver_config());
    if (events && events->enabled()) {
        options.on_event = [events, id](nlohmann::json record) {
            record["id"] = id;
            (void)events->emit(std::move(record));
        };
    }
    auto service = net::EgressService::start(executor, std::move(*setup.sockets), std::move(options));
    setup.sockets.reset();
    return service;
}

}  // namespace nucleus::core
