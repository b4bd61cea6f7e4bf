#include "net/address_pool.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>

namespace nucleus::net {

std::string to_string(Ipv4 a) {
    char text[INET_ADDRSTRLEN];
    in_addr raw{a.network_order()};
    ::inet_ntop(AF_INET, &raw, text, sizeof text);
    return text;
}

std::string to_string(Ipv6 a) {
    char text[INET6_ADDRSTRLEN];
    ::inet_ntop(AF_INET6, a.bytes.data(), text, sizeof text);
    return text;
}

// inet_pton(3) accepts only the dotted quad (no "10.1", no octal), which
// is what a subnet setting should be.
std::optional<Ipv4> parse_ipv4(std::string_view text) {
    if (text.size() >= INET_ADDRSTRLEN) return std::nullopt;
    std::string s(text);
    in_addr raw{};
    if (::inet_pton(AF_INET, s.c_str(), &raw) != 1) return std::nullopt;
    return Ipv4{ntohl(raw.s_addr)};
}

std::optional<Ipv6> parse_ipv6(std::string_view text) {
    if (text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    std::string s(text);
    Ipv6 a;
    if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
    return a;
}

std::optional<uint32_t> Ipv4Subnet::index_of(Ipv4 a) const {
    if (!contains(a)) return std::nullopt;
    return a.value - network.value;
}

bool Ipv6Subnet::contains(const Ipv6& a) const {
    for (int bit = 0; bit < prefix; ++bit) {
        int byte = bit / 8, shift = 7 - bit % 8;
        if (((a.bytes[byte] >> shift) & 1) != ((network.bytes[byte] >> shift) & 1)) return false;
    }
    return true;
}

Ipv6 Ipv6Subnet::at(uint32_t index) const {
    Ipv6 a = network;
    // The prefix is at most /120 and indices fit the IPv4 subnet's host
    // part, so adding into the low 32 bits never carries into the prefix
    // for the indices handed out (parse_ipv6_subnet keeps host bits zero).
    uint32_t low =
        (uint32_t(a.bytes[12]) << 24) | (uint32_t(a.bytes[13]) << 16) | (uint32_t(a.bytes[14]) << 8) | a.bytes[15];
    low += index;
    a.bytes[12] = uint8_t(low >> 24);
    a.bytes[13] = uint8_t(low >> 16);
    a.bytes[14] = uint8_t(low >> 8);
    a.bytes[15] = uint8_t(low);
    return a;
}

namespace {

// "ADDR/PREFIX" split, with the prefix as a number in [lo, hi].
Result<std::pair<std::string_view, int>> split_cidr(std::string_view text, int lo, int hi, const char* what) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos)
        return Error::plain("\"" + std::string(text) + "\" is not an " + what + " subnet (ADDRESS/PREFIX)");
    std::string_view bits = text.substr(slash + 1);
    int prefix = -1;
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (ec != std::errc{} || end != bits.data() + bits.size() || prefix < lo || prefix > hi)
        return Error::plain("\"" + std::string(text) + "\": the prefix length must be " + std::to_string(lo) + "-" +
                            std::to_string(hi));
    return std::pair{text.substr(0, slash), prefix};
}

}  // namespace

Result<Ipv4Subnet> parse_ipv4_subnet(std::string_view text) {
    auto parts = split_cidr(text, 8, 30, "IPv4");
    if (!parts) return std::move(parts).error();
    auto addr = parse_ipv4(parts->first);
    if (!addr)
        return Error::plain("\"" + std::string(text) + "\": \"" + std::string(parts->first) +
                            "\" is not an IPv4 address");
    Ipv4Subnet s{*addr, parts->second};
    if ((addr->value & ~s.mask().value) != 0)
        return Error::plain("\"" + std::string(text) + "\" has host bits set (did you mean " +
                            to_string(Ipv4Subnet{Ipv4{addr->value & s.mask().value}, s.prefix}) + "?)");
    return s;
}

Result<Ipv6Subnet> parse_ipv6_subnet(std::string_view text) {
    auto parts = split_cidr(text, 64, 120, "IPv6");
    if (!parts) return std::move(parts).error();
    auto addr = parse_ipv6(parts->first);
    if (!addr)
        return Error::plain("\"" + std::string(text) + "\": \"" + std::string(parts->first) +
                            "\" is not an IPv6 address");
    Ipv6Subnet s{*addr, parts->second};
    Ipv6 masked = *addr;
    for (int bit = s.prefix; bit < 128; ++bit) masked.bytes[bit / 8] &= uint8_t(~(1u << (7 - bit % 8)));
    if (!(masked == *addr))
        return Error::plain("\"" + std::string(text) + "\" has host bits set (did you mean " +
                            to_string(Ipv6Subnet{masked, s.prefix}) + "?)");
    return s;
}

std::string to_string(const Ipv4Subnet& s) { return to_string(s.network) + "/" + std::to_string(s.prefix); }
std::string to_string(const Ipv6Subnet& s) { return to_string(s.network) + "/" + std::to_string(s.prefix); }

SandboxAddress AddressPlan::address(uint32_t index) const {
    SandboxAddress a{index, subnet4.at(index), std::nullopt};
    if (subnet6) a.v6 = subnet6->at(index);
    return a;
}

// ---- Leases -----------------------------------------------------------------

void AddressLease::release() {
    if (!lock_.valid()) return;
    ::unlink(path_.c_str());
    lock_.reset();
}

namespace {

// Locks <dir>/<v4>; nullopt when another process holds it (or removed it
// while we were opening: the path no longer names the file we locked).
Result<std::optional<io::unique_fd>> try_lock(const std::string& path) {
    auto fd = io::open_fd(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
    if (!fd) return std::move(fd).error();
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) return std::optional<io::unique_fd>();
        return Error::from_errno("flock " + path);
    }
    struct stat held {
    }, named{};
    if (::fstat(fd->get(), &held) < 0 || ::stat(path.c_str(), &named) < 0 || held.st_ino != named.st_ino ||
        held.st_dev != named.st_dev)
        return std::optional<io::unique_fd>();
    return std::optional<io::unique_fd>(std::move(*fd));
}

Status make_dir(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) return Error::from_errno("mkdir " + dir);
    return {};
}

// A completed lease writes its owner into the file and a release removes
// the file, so a non-empty file we could lock was left by a dead holder.
bool previously_owned(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && st.st_size > 0;
}

uint32_t random_u32() {
    uint32_t v = 0;
    if (::getrandom(&v, sizeof v, GRND_NONBLOCK) != sizeof v) v = static_cast<uint32_t>(::getpid()) * 2654435761u;
    return v;
}

}  // namespace

Result<AddressLease> lease_address(const AddressPlan& plan, const std::string& dir, const std::string& owner,
                                   const std::function<bool(const SandboxAddress&)>& in_use) {
    NUCLEUS_TRY(make_dir(dir).wrap("leasing a sandbox address"));
    const uint32_t count = plan.subnet4.last_index() - 1;  // indices 2 .. last_index()
    // A random start keeps concurrent runs apart and does not hand a just
    // released address (whose conntrack entries may linger) straight back.
    const uint32_t start = random_u32() % count;
    for (uint32_t i = 0; i < count; ++i) {
        SandboxAddress candidate = plan.address(2 + (start + i) % count);
        std::string path = dir + "/" + to_string(candidate.v4);
        auto lock = try_lock(path);
        if (!lock) return std::move(lock).error().wrap("leasing a sandbox address");
        if (!*lock) continue;
        if (in_use(candidate)) continue;  // closing the fd drops the lock; the file stays for its user
        AddressLease lease;
        lease.lock_ = std::move(**lock);
        lease.path_ = std::move(path);
        lease.address_ = candidate;
        lease.inherited_ = previously_owned(lease.lock_.get());
        (void)::ftruncate(lease.lock_.get(), 0);
        (void)io::write_all(lease.lock_.get(), owner + "\n");
        return lease;
    }
    return Error::plain("leasing a sandbox address: all " + std::to_string(count) + " addresses of " +
                        to_string(plan.subnet4) + " are in use");
}

Result<AddressLease> lease_this_address(const AddressPlan& plan, const std::string& dir, uint32_t index,
                                        const std::string& owner) {
    SandboxAddress a = plan.address(index);
    const std::string what = "leasing sandbox address " + to_string(a.v4);
    if (index < 2 || index > plan.subnet4.last_index())
        return Error::plain(what + ": not a sandbox address of " + to_string(plan.subnet4));
    NUCLEUS_TRY(make_dir(dir).wrap(what));
    std::string path = dir + "/" + to_string(a.v4);
    auto lock = try_lock(path);
    if (!lock) return std::move(lock).error().wrap(what);
    if (!*lock) return Error{EWOULDBLOCK, what + ": another process holds it"};
    AddressLease lease;
    lease.lock_ = std::move(**lock);
    lease.path_ = std::move(path);
    lease.address_ = a;
    lease.inherited_ = previously_owned(lease.lock_.get());
    if (!owner.empty()) {
        (void)::ftruncate(lease.lock_.get(), 0);
        (void)io::write_all(lease.lock_.get(), owner + "\n");
    }
    return lease;
}

std::optional<uint32_t> lease_index(const AddressPlan& plan, std::string_view file_name) {
    auto a = parse_ipv4(file_name);
    if (!a) return std::nullopt;
    auto index = plan.subnet4.index_of(*a);
    if (!index || *index < 2 || *index > plan.subnet4.last_index()) return std::nullopt;
    return index;
}

}  // namespace nucleus::net
