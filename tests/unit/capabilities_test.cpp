#include <catch2/catch_test_macros.hpp>

#include "isolation/capabilities.hpp"

using namespace nucleus::isolation;

TEST_CASE("capability names parse in every common spelling") {
    CHECK(capability_from_name("CAP_NET_RAW") == 13);
    CHECK(capability_from_name("net_raw") == 13);
    CHECK(capability_from_name("Net_Bind_Service") == 10);
    CHECK(capability_from_name("CAP_CHECKPOINT_RESTORE") == 40);
    CHECK_FALSE(capability_from_name("CAP_FLY"));
    CHECK(capability_name(21) == "CAP_SYS_ADMIN");
    CHECK(capability_list((1ULL << 0) | (1ULL << 13)) == "CAP_CHOWN,CAP_NET_RAW");
    CHECK(capability_list(0).empty());
    CHECK(last_capability() >= 40);
}
