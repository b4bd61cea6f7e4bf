#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <cstdlib>
#include <cstring>
#include <string>

#include "io/error.hpp"
#include "io/startup.hpp"
#include "io/unique_fd.hpp"

namespace {

long smaps_kib(const std::string& key) {
    auto text = nucleus::io::read_file("/proc/self/smaps_rollup");
    if (!text) return -1;
    auto at = text->find("\n" + key + ":");
    return at == std::string::npos ? -1 : std::strtol(text->c_str() + at + key.size() + 2, nullptr, 10);
}

// The test runs in a child: it rearranges the heap of the process it runs in.
int child_checks() {
    nucleus::io::prepare_startup_memory();
    // Start-up's allocations: they land in the huge page.
    char* blocks[64];
    for (auto& b : blocks) {
        b = static_cast<char*>(std::malloc(4096));
        if (!b) return 10;
        std::memset(b, 1, 4096);
    }
    if (smaps_kib("AnonHugePages") < 2048) return 11;
    for (auto& b : blocks) std::free(b);
    nucleus::io::release_startup_memory();
    // The unused huge page is given back; malloc works on.
    if (smaps_kib("AnonHugePages") != 0) return 12;
    void* after = std::malloc(1 << 20);
    if (!after) return 13;
    std::memset(after, 2, 1 << 20);
    std::free(after);
    return 0;
}

}  // namespace

TEST_CASE("start-up's heap is one huge page until it is released") {
#if defined(__SANITIZE_ADDRESS__)
    SKIP("the sanitizer's allocator is not glibc's heap");
#endif
    auto thp = nucleus::io::read_file("/sys/kernel/mm/transparent_hugepage/enabled");
    if (!thp || thp->find("[never]") != std::string::npos) SKIP("transparent huge pages are off on this host");
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(child_checks());
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
