#include "core/spec/ulimits.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <iterator>

#include "core/spec/values.hpp"

namespace nucleus::core {

namespace {

struct UlimitName {
    const char* name;
    int resource;
};
constexpr UlimitName ulimit_names[] = {
    {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},         {"fsize", RLIMIT_FSIZE},
    {"locks", RLIMIT_LOCKS},       {"memlock", RLIMIT_MEMLOCK},
    {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},     {"nproc", RLIMIT_NPROC},
    {"rss", RLIMIT_RSS},           {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},       {"as", RLIMIT_AS},
};

const UlimitName* find_name(const std::string& name) {
    auto it = std::find_if(std::begin(ulimit_names), std::end(ulimit_names),
                           [&](const UlimitName& n) { return name == n.name; });
    return it == std::end(ulimit_names) ? nullptr : it;
}

Error bad(const std::string& why) { return spec_values::bad("ulimit", why); }

// Docker's convention: -1 (or "unlimited") is RLIM_INFINITY.
Result<uint64_t> limit_value(const std::string& text, const std::string& whole, const char* which) {
    auto fail = [&](const std::string& why) { return bad("\"" + whole + "\": " + which + " limit " + why); };
    if (text.empty()) return fail("is missing (NAME=SOFT[:HARD], e.g. nofile=1024:2048)");
    if (text == "unlimited" || text == "-1") return uint64_t(RLIM_INFINITY);
    if (text[0] == '-') return fail("\"" + text + "\" is negative (only -1, meaning unlimited, is)");
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc::result_out_of_range) return fail("\"" + text + "\" is out of range");
    if (ec != std::errc{} || end != text.data() + text.size())
        return fail("\"" + text + "\" is not a whole number, -1 or \"unlimited\"");
    if (v == RLIM_INFINITY) return fail("\"" + text + "\" is out of range");
    return v;
}

std::string limit_text(uint64_t v) { return v == RLIM_INFINITY ? "unlimited" : std::to_string(v); }

}  // namespace

Result<UlimitSpec> parse_ulimit(const std::string& text) {
    auto eq = text.find('=');
    if (eq == std::string::npos) return bad("\"" + text + "\" is not NAME=SOFT[:HARD]");
    UlimitSpec u;
    u.name = text.substr(0, eq);
    const UlimitName* known = find_name(u.name);
    if (!known) {
        std::string names;
        for (const auto& n : ulimit_names) names += std::string(names.empty() ? "" : ", ") + n.name;
        return bad("unknown limit \"" + u.name + "\" (known: " + names + ")");
    }
    u.resource = known->resource;
    std::string values = text.substr(eq + 1);
    auto colon = values.find(':');
    if (colon != std::string::npos && values.find(':', colon + 1) != std::string::npos)
        return bad("\"" + text + "\" has more than SOFT:HARD");
    auto soft = limit_value(values.substr(0, colon), text, "soft");
    if (!soft) return std::move(soft).error();
    u.soft = u.hard = *soft;
    if (colon != std::string::npos) {
        auto hard = limit_value(values.substr(colon + 1), text, "hard");
        if (!hard) return std::move(hard).error();
        u.hard = *hard;
    }
    if (u.soft > u.hard)
        return bad("\"" + text + "\": soft limit above hard limit (" + limit_text(u.soft) + " > " + limit_text(u.hard) +
                   ")");
    if (u.resource == RLIMIT_NOFILE && u.hard == RLIM_INFINITY)
        return bad("\"" + text +
                   "\": nofile cannot be unlimited (-1): the kernel caps open files at fs.nr_open; give a number");
    return u;
}

std::optional<std::pair<int, uint64_t>> ulimit_hard_value(const std::string& name, const std::string& hard) {
    const UlimitName* known = find_name(name);
    if (!known) return std::nullopt;
    auto v = limit_value(hard, name + "=" + hard, "hard");
    if (!v) return std::nullopt;
    return std::pair{known->resource, *v};
}

}  // namespace nucleus::core
