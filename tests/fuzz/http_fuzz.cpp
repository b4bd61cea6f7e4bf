// libFuzzer target for the daemon's API input: HTTP/1.1 requests as a
// connection reads them (io/http_request.cpp: request line, headers, chunked
// or sized bodies, pipelining, percent-decoding of path and query), in
// reads of a size the first byte picks, then the strict query readers every
// endpoint uses (core/daemon/query.cpp). A client may send anything; the
// parser may refuse it, but must stay within its limits and never crash,
// hang or read out of bounds (ASan + UBSan, scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/daemon/query.hpp"
#include "io/http_request.hpp"

namespace {

void read_query(const nucleus::io::http::Request& req) {
    using namespace nucleus::core::daemon;
    (void)query_flag(req, "force");
    (void)query_seconds(req, "timeout");
    (void)query_count(req, "tail", 1'000'000, "all");
    (void)query_choice(req, "stream", {"stdout", "stderr", "both"}, "both");
    constexpr std::string_view accepted[] = {"force", "timeout", "tail", "stream"};
    (void)check_query_keys(req, accepted);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const size_t chunk = 1 + data[0] % 64;
    std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    nucleus::io::http::Limits limits;
    limits.max_header_bytes = 1024;  // small, so that the fuzzer reaches them
    limits.max_body_bytes = 4096;
    nucleus::io::http::detail::RequestParser parser(limits);
    std::string_view pending;
    while (!input.empty() || !pending.empty()) {
        if (pending.empty()) {
            pending = input.substr(0, chunk);
            input.remove_prefix(pending.size());
        }
        size_t used = parser.feed(pending);
        if (used > pending.size()) __builtin_trap();
        pending.remove_prefix(used);
        if (parser.reject_status != 0) break;  // the connection answers and closes
        if (parser.complete()) {
            if (parser.request.body.size() > limits.max_body_bytes) __builtin_trap();  // the bound held
            read_query(parser.request);
            parser.reset();
        } else if (used == 0) {
            break;  // paused without progress: the connection would wait for more
        }
    }
    return 0;
}
