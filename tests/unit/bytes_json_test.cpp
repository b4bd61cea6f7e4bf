#include <catch2/catch_test_macros.hpp>

#include "io/bytes_json.hpp"

using namespace nucleus;
using nlohmann::json;

TEST_CASE("UTF-8 validation follows RFC 3629", "[bytes_json]") {
    CHECK(io::is_valid_utf8(""));
    CHECK(io::is_valid_utf8("plain ascii"));
    CHECK(io::is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    CHECK(io::is_valid_utf8(std::string("nul\0inside", 10)));
    CHECK_FALSE(io::is_valid_utf8("\xff"));
    CHECK_FALSE(io::is_valid_utf8("\xc0\xaf"));  // overlong '/'
    CHECK_FALSE(io::is_valid_utf8("\xe0\x80\xaf"));  // overlong
    CHECK_FALSE(io::is_valid_utf8("\xed\xa0\x80"));  // surrogate U+D800
    CHECK_FALSE(io::is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
    CHECK_FALSE(io::is_valid_utf8("\xe2\x82"));  // truncated
    CHECK_FALSE(io::is_valid_utf8("\x80"));  // lone continuation
}

TEST_CASE("base64 round-trips every length and byte", "[bytes_json]") {
    std::string all;
    for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
    for (size_t len = 0; len <= all.size(); ++len) {
        auto text = io::base64_encode(all.substr(0, len));
        auto back = io::base64_decode(text);
        REQUIRE(back);
        REQUIRE(*back == all.substr(0, len));
    }
    CHECK(io::base64_encode("foobar") == "Zm9vYmFy");
    CHECK(io::base64_encode("fo") == "Zm8=");
    CHECK_FALSE(io::base64_decode("Zm8"));
    CHECK_FALSE(io::base64_decode("Zm=8"));
    CHECK_FALSE(io::base64_decode("Z!9v"));
    CHECK_FALSE(io::base64_decode("Zm8=Zm8="));
}

TEST_CASE("bytes survive JSON text in both forms", "[bytes_json]") {
    for (std::string value : {std::string("ok"), std::string("ok\xff\xfe\n"), std::string("\xc3\xa9"),
                              std::string("a\0b", 3), std::string("\x80\x80")}) {
        json j = io::bytes_json(value);
        CHECK(j.is_string() == io::is_valid_utf8(value));
        auto text = io::dump_json(j);
        auto back = io::bytes_from_json(json::parse(text), "value");
        REQUIRE(back);
        CHECK(*back == value);
    }
    CHECK_FALSE(io::bytes_from_json(json(3), "value"));
    CHECK_FALSE(io::bytes_from_json(json{{"base64", "!!"}}, "value"));
    CHECK_FALSE(io::bytes_from_json(json{{"base64", "Zm8="}, {"extra", 1}}, "value"));
    CHECK(io::dump_json(json("x\xff")) == "\"x\xef\xbf\xbd\"");  // a missed field is replaced, not thrown on
}
