#include "net/bridge.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "net/netlink_route.hpp"

namespace nucleus::net {

namespace {

std::string net_dir(const std::string& root) { return root + "/net"; }

Status make_dir(const std::string& path) {
    if (::mkdir(path.c_str(), 0700) < 0 && errno != EEXIST) return Error::from_errno("mkdir " + path);
    return {};
}

// <state>/net/<bridge>.lock, held while the bridge and its table are
// checked or made: two first sandboxes must not both create them.
Result<io::unique_fd> lock_bridge(const std::string& root, const std::string& name) {
    NUCLEUS_TRY(make_dir(net_dir(root)));
    auto fd = io::open_fd(net_dir(root) + "/" + name + ".lock", O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
    if (!fd) return std::move(fd).error();
    // Held for a few netlink requests at most; a blocking wait is fine in
    // preparation, which is plain blocking code (a worker in the daemon).
    while (::flock(fd->get(), LOCK_EX) < 0)
        if (errno != EINTR) return Error::from_errno("locking bridge " + name);
    return std::move(*fd);
}

// The subnets, for sweeps that find this bridge's leftovers later.
void remember_config(const std::string& root, const BridgeConfig& c) {
    std::string text = to_string(c.plan.subnet4) + " " + (c.plan.subnet6 ? to_string(*c.plan.subnet6) : "none") + "\n";
    std::string path = net_dir(root) + "/" + c.name + ".conf";
    auto current = io::read_file(path, 4096);
    if (current && *current == text) return;
    std::string tmp = path + ".tmp";
    auto fd = io::open_fd(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (fd && io::write_all(fd->get(), text)) ::rename(tmp.c_str(), path.c_str());
    else ::unlink(tmp.c_str());
}

// Writes a sysctl only when it differs (most hosts keep ip_forward on).
Status sysctl(const std::string& path, const char* value) {
    auto current = io::read_file(path, 64);
    if (current && !current->empty() && current->front() == value[0]) return {};
    return io::write_file(path, value).wrap("setting " + path.substr(10));
}

Status forwarding_sysctls(const BridgeConfig& c) {
    NUCLEUS_TRY(sysctl("/proc/sys/net/ipv4/ip_forward", "1"));
    // Published ports on 127.0.0.1 need loopback sources routed onto the
    // bridge (net/nat.hpp, "Loopback"); only this device gets it.
    NUCLEUS_TRY(sysctl("/proc/sys/net/ipv4/conf/" + c.name + "/route_localnet", "1"));
    if (c.plan.subnet6) NUCLEUS_TRY(sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1"));
    return {};
}

std::array<uint8_t, 6> random_mac() {
    std::array<uint8_t, 6> mac{};
    if (::getrandom(mac.data(), mac.size(), GRND_NONBLOCK) != static_cast<ssize_t>(mac.size()))
        mac = {0, 0, 0, 0, uint8_t(::getpid() >> 8), uint8_t(::getpid())};
    mac[0] = uint8_t((mac[0] & 0xfe) | 0x02);  // unicast, locally administered
    return mac;
}

Result<std::optional<rt::LinkInfo>> find_link(NetlinkSession& rt, const std::string& name) {
    std::vector<NetlinkMessage> one;
    one.push_back(rt::get_link(name));
    auto replies = rt.execute(one);
    if (!replies) {
        if (replies.error().code == ENODEV) return std::optional<rt::LinkInfo>();
        return std::move(replies).error();
    }
    for (const auto& r : *replies)
        if (auto link = rt::parse_link(r)) return std::optional<rt::LinkInfo>(*link);
    return Error::plain("looking up link " + name + ": no answer");
}

// Refuses subnets that overlap an address already on this host (another
// runtime's bridge, a VPN, the uplink): routing would be ambiguous.
Status check_collisions(const BridgeConfig& c, const std::vector<rt::AddressInfo>& addresses, int bridge_index) {
    for (const auto& a : addresses) {
        if (a.index == bridge_index) continue;
        if (a.v4) {
            Ipv4Subnet theirs{Ipv4{a.v4->value & Ipv4Subnet{Ipv4{}, a.prefix}.mask().value}, a.prefix};
            if (c.plan.subnet4.contains(*a.v4) || theirs.contains(c.plan.subnet4.network))
                return Error::plain("bridge subnet " + to_string(c.plan.subnet4) + " overlaps " + to_string(*a.v4) +
                                    "/" + std::to_string(a.prefix) +
                                    " on this host; choose another with NUCLEUS_BRIDGE_SUBNET");
        }
        if (a.v6 && c.plan.subnet6 && c.plan.subnet6->contains(*a.v6))
            return Error::plain("bridge IPv6 subnet " + to_string(*c.plan.subnet6) + " holds " + to_string(*a.v6) +
                                ", already on this host; choose another with NUCLEUS_BRIDGE_SUBNET6");
    }
    return {};
}

Result<std::vector<rt::AddressInfo>> list_addresses(NetlinkSession& rt) {
    auto replies = rt.dump(rt::dump_addresses(AF_UNSPEC));
    if (!replies) return std::move(replies).error();
    std::vector<rt::AddressInfo> out;
    for (const auto& r : *replies)
        if (auto a = rt::parse_address(r)) out.push_back(*a);
    return out;
}

// A bridge of that name already exists: it must be one, with our gateway
// addresses (someone may have changed the subnets since it was made).
Status check_existing(NetlinkSession& rt, const BridgeConfig& c, const rt::LinkInfo& link) {
    if (link.kind != "bridge")
        return Error::plain("a link named " + c.name + " exists and is not a bridge (" +
                            (link.kind.empty() ? std::string("no kind") : link.kind) + "); set NUCLEUS_BRIDGE");
    auto addresses = list_addresses(rt);
    if (!addresses) return std::move(addresses).error();
    const SandboxAddress gw = c.plan.gateway();
    bool has4 = false, has6 = !c.plan.subnet6;
    for (const auto& a : *addresses) {
        if (a.index != link.index) continue;
        if (a.v4 && *a.v4 == gw.v4 && a.prefix == c.plan.subnet4.prefix) has4 = true;
        if (a.v6 && gw.v6 && *a.v6 == *gw.v6 && a.prefix == c.plan.subnet6->prefix) has6 = true;
    }
    if (!has4 || !has6)
        return Error::plain("bridge " + c.name + " exists without the gateway address " +
                            (!has4 ? to_string(gw.v4) + "/" + std::to_string(c.plan.subnet4.prefix)
                                   : to_string(*gw.v6) + "/" + std::to_string(c.plan.subnet6->prefix)) +
                            " (its subnets differ from NUCLEUS_BRIDGE_SUBNET/NUCLEUS_BRIDGE_SUBNET6; delete it with "
                            "`ip link del " +
                            c.name + "` once no sandbox uses it, or set them to match)");
    if (!(link.flags & IFF_UP)) NUCLEUS_TRY(rt.execute(rt::set_up(link.index, c.name)));
    return {};
}

Result<int> create_bridge(NetlinkSession& rt, const BridgeConfig& c) {
    auto addresses = list_addresses(rt);
    if (!addresses) return std::move(addresses).error();
    NUCLEUS_TRY(check_collisions(c, *addresses, -1));
    NUCLEUS_TRY(rt.execute(rt::new_bridge(c.name, random_mac())));
    auto link = find_link(rt, c.name);
    if (!link) return std::move(link).error();
    if (!*link) return Error::plain("bridge " + c.name + " vanished right after it was created");
    const SandboxAddress gw = c.plan.gateway();
    std::vector<NetlinkMessage> batch;
    batch.push_back(rt::new_address((*link)->index, gw.v4, c.plan.subnet4.prefix));
    if (gw.v6) batch.push_back(rt::new_address((*link)->index, *gw.v6, c.plan.subnet6->prefix));
    auto done = rt.execute(batch);
    if (!done) {
        (void)rt.execute(rt::delete_link(c.name));
        return std::move(done).error();
    }
    return (*link)->index;
}

}  // namespace

Result<int> ensure_bridge(NetlinkSession& rt, NetlinkSession& nf, const BridgeConfig& c, const std::string& root) {
    auto lock = lock_bridge(root, c.name);
    if (!lock) return std::move(lock).error().wrap("preparing bridge " + c.name);
    remember_config(root, c);
    auto link = find_link(rt, c.name);
    if (!link) return std::move(link).error().wrap("preparing bridge " + c.name);
    int index = 0;
    if (*link) {
        NUCLEUS_TRY(check_existing(rt, c, **link));
        index = (*link)->index;
    } else {
        auto made = create_bridge(rt, c);
        if (!made) return std::move(made).error().wrap("creating bridge " + c.name);
        index = *made;
    }
    NUCLEUS_TRY(forwarding_sysctls(c).wrap("preparing bridge " + c.name));
    NUCLEUS_TRY(ensure_nat_table(nf, c).wrap("preparing bridge " + c.name));
    return index;
}

Result<io::unique_fd> netlink_socket_in(int netns_fd, int bus) {
    auto own = io::open_fd("/proc/thread-self/ns/net", O_RDONLY);
    if (!own) return std::move(own).error().wrap("opening our own network namespace");
    if (::setns(netns_fd, CLONE_NEWNET) < 0) return Error::from_errno("entering the sandbox's network namespace");
    int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, bus);
    int err = errno;
    // Going back cannot fail for lack of privilege (we just left it); if it
    // failed anyway this thread would go on in the sandbox's namespace, so
    // nothing is safer than stopping.
    if (::setns(own->get(), CLONE_NEWNET) < 0) std::abort();
    if (fd < 0) return Error::from_errno("opening a netlink socket in the sandbox's network namespace", err);
    return io::unique_fd(fd);
}

Status configure_sandbox_link(NetlinkSession& host, NetlinkSession& inner, const BridgeConfig& c, int bridge_index,
                              const SandboxAddress& a, int netns_fd) {
    const std::string veth = host_veth_name(a);
    NUCLEUS_TRY(host.execute(rt::new_veth(
        {.host_name = veth, .peer_name = sandbox_interface, .peer_netns_fd = netns_fd, .master_index = bridge_index})));
    auto link = find_link(inner, sandbox_interface);
    if (!link) return std::move(link).error();
    if (!*link)
        return Error::plain(std::string("the sandbox's ") + sandbox_interface + " did not appear in its namespace");
    const int index = (*link)->index;
    const SandboxAddress gw = c.plan.gateway();
    std::vector<NetlinkMessage> batch;
    batch.push_back(rt::set_up(index, sandbox_interface));
    batch.push_back(rt::new_address(index, a.v4, c.plan.subnet4.prefix));
    if (a.v6) batch.push_back(rt::new_address(index, *a.v6, c.plan.subnet6->prefix));
    batch.push_back(rt::new_default_route(index, gw.v4));
    if (a.v6) batch.push_back(rt::new_default_route(index, *gw.v6));
    auto done = inner.execute(batch);
    if (!done) return std::move(done).error();
    return {};
}

// ---- SandboxBridge ----------------------------------------------------------

namespace {

struct Sessions {
    KernelNetlink rt_socket;
    KernelNetlink nf_socket;
};

Result<Sessions> open_sessions() {
    auto rt = KernelNetlink::open(NETLINK_ROUTE);
    if (!rt) return std::move(rt).error();
    auto nf = KernelNetlink::open(NETLINK_NETFILTER);
    if (!nf) return std::move(nf).error();
    return Sessions{std::move(*rt), std::move(*nf)};
}

// Binds host address:port, so that no host service can take the port
// while it is published, and one that has it already is reported now.
// Never listens: DNAT sends the port's traffic to the sandbox first.
Result<io::unique_fd> reserve(const PublishedPort& p) {
    const int type = (p.protocol == Protocol::Udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC;
    int fd = ::socket(p.family, type, 0);
    if (fd < 0) return Error::from_errno("reserving port " + to_string(p));
    io::unique_fd owned(fd);
    int rc;
    if (p.family == AF_INET6) {
        int on = 1;
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
        sockaddr_in6 sa{};
        sa.sin6_family = AF_INET6;
        sa.sin6_port = htons(p.host_port);
        if (p.host_v6) std::copy(p.host_v6->bytes.begin(), p.host_v6->bytes.end(), sa.sin6_addr.s6_addr);
        rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    } else {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(p.host_port);
        sa.sin_addr.s_addr = p.host_v4 ? p.host_v4->network_order() : INADDR_ANY;
        rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    }
    if (rc < 0) {
        if (errno == EADDRINUSE)
            return Error{EADDRINUSE, "publishing " + to_string(p) + ": the port is in use on the host"};
        if (errno == EADDRNOTAVAIL)
            return Error{EADDRNOTAVAIL, "publishing " + to_string(p) + ": the address is not one of this host's"};
        return Error::from_errno("publishing " + to_string(p) + ": bind");
    }
    return owned;
}

// Bridges this process has made ready, by name: checking a bridge costs a
// lock, an address dump and four more requests, so each process does it
// once per bridge. A bridge deleted later fails the next attach (its index
// is gone), which forgets it here so that the sandbox after makes it again.
std::mutex ready_mutex;
std::map<std::string, int> ready_bridges;

Result<int> ready_bridge(NetlinkSession& rt, NetlinkSession& nf, const BridgeConfig& c, const std::string& root) {
    const std::string key = root + "\n" + c.name + "\n" + c.table() + "\n" + to_string(c.plan.subnet4) + "\n" +
                            (c.plan.subnet6 ? to_string(*c.plan.subnet6) : "");
    {
        std::lock_guard lock(ready_mutex);
        if (auto it = ready_bridges.find(key); it != ready_bridges.end()) return it->second;
    }
    auto index = ensure_bridge(rt, nf, c, root);
    if (!index) return index;
    std::lock_guard lock(ready_mutex);
    ready_bridges[key] = *index;
    return index;
}

void forget_bridge(int index) {
    std::lock_guard lock(ready_mutex);
    for (auto it = ready_bridges.begin(); it != ready_bridges.end();)
        it = it->second == index ? ready_bridges.erase(it) : std::next(it);
}

// Removes what a dead holder of this address may have left in the table.
Status purge_address(NetlinkSession& nf, const BridgeConfig& c, const SandboxAddress& a) {
    NUCLEUS_TRY(remove_egress_limit(nf, c, a));
    return remove_all_published_ports(nf, c, a);
}

}  // namespace

Result<std::unique_ptr<SandboxBridge>> SandboxBridge::prepare(const BridgeConfig& config, const std::string& root,
                                                              SandboxNetworkRequest request) {
    auto sessions = open_sessions();
    if (!sessions) return std::move(sessions).error().wrap("bridge networking");
    NetlinkSession rt(sessions->rt_socket), nf(sessions->nf_socket);
    std::unique_ptr<SandboxBridge> sb(new SandboxBridge());
    sb->config_ = config;
    sb->request_ = std::move(request);
    auto index = ready_bridge(rt, nf, config, root);
    if (!index) return std::move(index).error();
    sb->bridge_index_ = *index;
    auto in_use = [&rt](const SandboxAddress& a) {
        auto link = find_link(rt, host_veth_name(a));
        return !link || link->has_value();
    };
    auto lease = lease_address(config.plan, net_dir(root) + "/" + config.name, sb->request_.sandbox_id, in_use);
    if (!lease) return std::move(lease).error();
    sb->lease_ = std::move(*lease);
    sb->veth_ = host_veth_name(sb->lease_.address());
    if (sb->lease_.inherited()) NUCLEUS_TRY(purge_address(nf, config, sb->address()).wrap("clearing a stale lease"));
    for (const auto& p : sb->request_.publish) {
        auto fd = reserve(p);
        if (!fd) return std::move(fd).error();
        sb->reservations_.push_back(std::move(*fd));
    }
    if (auto st = sb->install_entries(nf); !st) {
        forget_bridge(sb->bridge_index_);  // its table flushed? the next sandbox makes it again
        return std::move(st).error();
    }
    return sb;
}

Status SandboxBridge::install_entries(NetlinkSession& nf) {
    NUCLEUS_TRY(add_published_ports(nf, config_, address(), request_.publish));
    published_ = !request_.publish.empty();
    NUCLEUS_TRY(add_egress_limit(nf, config_, address(), request_.egress));
    limited_ = request_.egress.limited;
    return {};
}

Result<std::unique_ptr<SandboxBridge>> SandboxBridge::readopt(const BridgeConfig& config, const std::string& root,
                                                              uint32_t index, SandboxNetworkRequest request) {
    std::unique_ptr<SandboxBridge> sb(new SandboxBridge());
    sb->config_ = config;
    sb->request_ = std::move(request);
    // A sweep or an allocation may hold the lock for a moment while it
    // looks at this address (and finds its veth): retry briefly.
    auto lease = lease_this_address(config.plan, net_dir(root) + "/" + config.name, index, sb->request_.sandbox_id);
    for (int i = 0; i < 100 && !lease && lease.error().code == EWOULDBLOCK; ++i) {
        ::usleep(2000);
        lease = lease_this_address(config.plan, net_dir(root) + "/" + config.name, index, sb->request_.sandbox_id);
    }
    if (!lease) return std::move(lease).error();
    sb->lease_ = std::move(*lease);
    sb->veth_ = host_veth_name(sb->lease_.address());
    sb->published_ = !sb->request_.publish.empty();
    sb->limited_ = sb->request_.egress.limited;
    for (const auto& p : sb->request_.publish)
        if (auto fd = reserve(p)) sb->reservations_.push_back(std::move(*fd));  // best effort: the entries stand
    return sb;
}

SandboxBridge::~SandboxBridge() { (void)release(); }

Status SandboxBridge::attach(pid_t pid) {
    auto ns = io::open_fd("/proc/" + std::to_string(pid) + "/ns/net", O_RDONLY);
    if (!ns) return std::move(ns).error().wrap("attaching the sandbox to bridge " + config_.name);
    auto inner_fd = netlink_socket_in(ns->get(), NETLINK_ROUTE);
    if (!inner_fd) return std::move(inner_fd).error();
    auto inner_socket = KernelNetlink::adopt(std::move(*inner_fd));
    auto host_socket = KernelNetlink::open(NETLINK_ROUTE);
    if (!inner_socket) return std::move(inner_socket).error();
    if (!host_socket) return std::move(host_socket).error();
    NetlinkSession host(*host_socket), inner(*inner_socket);
    auto st = configure_sandbox_link(host, inner, config_, bridge_index_, address(), ns->get());
    if (!st) forget_bridge(bridge_index_);  // gone or changed? the next sandbox checks it again
    return std::move(st).wrap("attaching the sandbox to bridge " + config_.name);
}

Status SandboxBridge::release() {
    if (released_ || !lease_.held()) return {};
    released_ = true;
    Status first;
    auto keep = [&first](Status st) {
        if (!st && first) first = std::move(st);
    };
    if (!limited_ && !published_) {
        reservations_.clear();
        lease_.release();
        return {};
    }
    auto sessions = open_sessions();
    if (!sessions) return std::move(sessions).error().wrap("releasing the sandbox's network");
    NetlinkSession nf(sessions->nf_socket);
    if (limited_) keep(remove_egress_limit(nf, config_, address()));
    if (published_) keep(remove_published_ports(nf, config_, address(), request_.publish));
    // The veth is not deleted here: it goes with the sandbox's network
    // namespace, which the kernel tears down asynchronously once the
    // sandbox's last process is gone (cleanup_net, batched across
    // namespaces; ~40 ms later here). RTM_DELLINK would instead wait for
    // RCU grace periods inside the syscall, ~38 ms on the reactor per
    // sandbox (bench/micro netns_bench). Until the kernel is done, the
    // veth's name keeps its address from being leased again.
    reservations_.clear();
    // Entries that could not be removed keep the lease file, so the next
    // sweep retries them.
    if (first) lease_.release();
    return first;
}

// ---- Sweep ------------------------------------------------------------------

namespace {

std::vector<std::pair<std::string, std::string>> list_dir(const std::string& dir, const std::string& suffix);

Status sweep_one(const std::string& root, const BridgeConfig& c, BridgeSweepReport& report) {
    auto sessions = open_sessions();
    if (!sessions) return std::move(sessions).error();
    NetlinkSession rt(sessions->rt_socket), nf(sessions->nf_socket);
    std::set<uint32_t> candidates, chains;
    auto objects = list_nat_objects(nf, c);
    if (objects) {
        chains.insert(objects->egress_chains.begin(), objects->egress_chains.end());
        candidates.insert(objects->egress_chains.begin(), objects->egress_chains.end());
        candidates.insert(objects->published.begin(), objects->published.end());
    } else if (objects.error().code != ENOENT) {
        return std::move(objects).error();
    }
    const std::string dir = net_dir(root) + "/" + c.name;
    for (const auto& [name, path] : list_dir(dir, ""))
        if (auto index = lease_index(c.plan, name)) candidates.insert(*index);
    for (uint32_t index : candidates) {
        auto lease = lease_this_address(c.plan, dir, index, "");
        if (!lease) continue;  // held: its supervisor lives
        const SandboxAddress a = c.plan.address(index);
        auto veth = find_link(rt, host_veth_name(a));
        if (!veth || veth->has_value()) continue;  // its sandbox lives (a daemon's, re-adopted later)
        Status st = chains.count(index) ? remove_egress_limit(nf, c, a) : Status{};
        if (st) st = remove_all_published_ports(nf, c, a);
        if (!st) {
            report.errors.push_back(st.error().describe());
            continue;
        }
        lease->release();
        ++report.addresses;
    }
    return {};
}

}  // namespace

BridgeSweepReport sweep_bridge_leftovers(const std::string& root) {
    BridgeSweepReport report;
    for (const auto& [name, path] : list_dir(net_dir(root), ".conf")) {
        auto text = io::read_file(path, 4096);
        if (!text) continue;
        auto space = text->find(' ');
        auto end = text->find('\n');
        if (space == std::string::npos || end == std::string::npos || end < space) continue;
        auto config = make_bridge_config(name.substr(0, name.size() - 5), text->substr(0, space),
                                         text->substr(space + 1, end - space - 1));
        if (!config) continue;
        if (auto st = sweep_one(root, *config, report); !st)
            report.errors.push_back("cleaning up bridge " + config->name + ": " + st.error().describe());
    }
    return report;
}

namespace {

std::vector<std::pair<std::string, std::string>> list_dir(const std::string& dir, const std::string& suffix) {
    std::vector<std::pair<std::string, std::string>> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (!suffix.empty() && !name.ends_with(suffix)) continue;
        out.emplace_back(name, dir + "/" + name);
    }
    ::closedir(d);
    return out;
}

}  // namespace

}  // namespace nucleus::net
