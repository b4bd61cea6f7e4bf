#include "core/signal_name.hpp"

#include <signal.h>
#include <string.h>

#include <cctype>
#include <charconv>
#include <optional>
#include <string>

namespace nucleus::core {

namespace {

// "RTMIN", "RTMIN+N", "RTMAX", "RTMAX-N" (already upper case, without SIG).
std::optional<int> realtime_signal(std::string_view name) {
    auto offset = [&](std::string_view base, int origin, char sign) -> std::optional<int> {
        if (!name.starts_with(base)) return std::nullopt;
        std::string_view rest = name.substr(base.size());
        if (rest.empty()) return origin;
        if (rest[0] != sign) return std::nullopt;
        int n = 0;
        auto [end, err] = std::from_chars(rest.data() + 1, rest.data() + rest.size(), n);
        if (err != std::errc{} || end != rest.data() + rest.size()) return std::nullopt;
        int value = sign == '+' ? origin + n : origin - n;
        if (value < SIGRTMIN || value > SIGRTMAX) return std::nullopt;
        return value;
    };
    if (auto s = offset("RTMIN", SIGRTMIN, '+')) return s;
    return offset("RTMAX", SIGRTMAX, '-');
}

}  // namespace

Result<int> parse_signal(std::string_view text) {
    std::string name(text);
    int number = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), number);
    if (!name.empty() && ec == std::errc{} && end == name.data() + name.size()) {
        if (number < 1 || number > SIGRTMAX) return Error::plain("signal " + name + " is out of range");
        return number;
    }
    for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (name.starts_with("SIG")) name.erase(0, 3);
    for (int s = 1; s < SIGRTMIN; ++s) {
        const char* abbrev = ::sigabbrev_np(s);
        if (abbrev && name == abbrev) return s;
    }
    if (auto s = realtime_signal(name)) return *s;
    return Error::plain("unknown signal \"" + std::string(text) + "\" (a name such as TERM or KILL, or a number)");
}

}  // namespace nucleus::core
