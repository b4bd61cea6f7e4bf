#include "isolation/cgroup/limits.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <charconv>
#include <cmath>
#include <sstream>

#include "isolation/cgroup/controllers.hpp"

namespace nucleus::isolation {

std::vector<std::string> CgroupLimits::controllers() const {
    std::vector<std::string> out;
    for (const auto& c : cgroup_controllers())
        if (c.wanted(*this)) out.push_back(c.name);
    return out;
}

const std::vector<CgroupController>& cgroup_controllers() {
    static const std::vector<CgroupController> all = {
        {"memory", cgroup::memory_wanted, cgroup::apply_memory},
        {"cpu", cgroup::cpu_wanted, cgroup::apply_cpu},
        {"pids", cgroup::pids_wanted, cgroup::apply_pids},
        {"io", cgroup::io_wanted, cgroup::apply_io},
    };
    return all;
}

Status apply_cgroup_limits(int dirfd, const CgroupLimits& limits) {
    for (const auto& c : cgroup_controllers())
        if (c.wanted(limits)) NUCLEUS_TRY(c.apply(dirfd, limits).wrap(std::string("setting ") + c.name + " limits"));
    return {};
}

Result<uint64_t> parse_size(const std::string& text) {
    if (text.empty()) return Error::plain("empty size");
    size_t pos = 0;
    double number = 0;
    try {
        number = std::stod(text, &pos);
    } catch (...) {
        return Error::plain("\"" + text + "\" is not a size (e.g. 512m, 2g)");
    }
    std::string unit = text.substr(pos);
    for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (unit.size() == 2 && unit[1] == 'b') unit.pop_back();  // "mb" == "m"
    double scale = 1;
    if (unit == "" || unit == "b") scale = 1;
    else if (unit == "k") scale = 1024.0;
    else if (unit == "m") scale = 1024.0 * 1024;
    else if (unit == "g") scale = 1024.0 * 1024 * 1024;
    else if (unit == "t") scale = 1024.0 * 1024 * 1024 * 1024;
    else return Error::plain("\"" + text + "\": unknown unit \"" + unit + "\" (use b, k, m, g or t)");
    double bytes = number * scale;
    if (!std::isfinite(bytes) || bytes < 0 || bytes > 9.2e18) return Error::plain("\"" + text + "\" is out of range");
    return static_cast<uint64_t>(bytes);
}

namespace {

Result<std::pair<uint32_t, uint32_t>> parse_device(const std::string& dev) {
    if (!dev.empty() && dev[0] == '/') {
        struct stat st {};
        if (::stat(dev.c_str(), &st) < 0) return Error::from_errno("stat " + dev);
        if (!S_ISBLK(st.st_mode)) return Error::plain(dev + " is not a block device");
        return std::pair{major(st.st_rdev), minor(st.st_rdev)};
    }
    auto colon = dev.find(':');
    uint32_t maj = 0, min = 0;
    if (colon == std::string::npos || std::from_chars(dev.data(), dev.data() + colon, maj).ec != std::errc{} ||
        std::from_chars(dev.data() + colon + 1, dev.data() + dev.size(), min).ec != std::errc{})
        return Error::plain("\"" + dev + "\" is not a block device path or MAJOR:MINOR");
    return std::pair{maj, min};
}

}  // namespace

Result<IoMaxLimit> parse_io_max(const std::string& text) {
    // The device ends where the first KEY=VALUE begins.
    auto eq = text.find('=');
    auto sep = eq == std::string::npos ? std::string::npos : text.rfind(':', eq);
    if (sep == std::string::npos) return Error::plain("\"" + text + "\" is not DEV:rbps=N,wbps=N,riops=N,wiops=N");
    auto device = parse_device(text.substr(0, sep));
    if (!device) return std::move(device).error();
    IoMaxLimit limit;
    limit.major = device->first;
    limit.minor = device->second;
    std::stringstream pairs(text.substr(sep + 1));
    std::string pair;
    while (std::getline(pairs, pair, ',')) {
        auto e = pair.find('=');
        if (e == std::string::npos) return Error::plain("\"" + pair + "\" is not KEY=VALUE");
        std::string key = pair.substr(0, e);
        auto value = parse_size(pair.substr(e + 1));
        if (!value) return std::move(value).error();
        if (key == "rbps") limit.rbps = *value;
        else if (key == "wbps") limit.wbps = *value;
        else if (key == "riops") limit.riops = *value;
        else if (key == "wiops") limit.wiops = *value;
        else return Error::plain("unknown io.max key \"" + key + "\" (rbps, wbps, riops, wiops)");
    }
    return limit;
}

}  // namespace nucleus::isolation
