#include <catch2/catch_test_macros.hpp>

#include "io/error.hpp"

using nucleus::Error;
using nucleus::Result;
using nucleus::Status;

namespace {
Result<int> parse_positive(int v) {
    if (v <= 0) return Error::plain("not positive");
    return v;
}
Status chain(int v) {
    NUCLEUS_TRY(parse_positive(v).wrap("checking input"));
    return {};
}
}  // namespace

TEST_CASE("Error wraps context outermost first and describes errno") {
    Error e = Error::from_errno("mkdir /x", ENOENT).wrap("creating cgroup");
    CHECK(e.message == "creating cgroup: mkdir /x");
    CHECK(e.describe() == "creating cgroup: mkdir /x: No such file or directory");
    CHECK(Error::plain("plain").describe() == "plain");
}

TEST_CASE("Result carries a value or an error, and NUCLEUS_TRY propagates") {
    auto ok = parse_positive(3);
    REQUIRE(ok);
    CHECK(*ok == 3);
    auto bad = chain(-1);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message == "checking input: not positive");
    CHECK(chain(1).ok());
}
