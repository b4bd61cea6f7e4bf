#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <cerrno>
#include <linux/seccomp.h>

#include "isolation/seccomp.hpp"

using namespace nucleus::isolation;

TEST_CASE("the precompiled default filter equals a fresh compilation") {
    auto fresh = compile_seccomp(default_seccomp_policy());
    REQUIRE(fresh);
    auto embedded = precompiled_default_seccomp();
    REQUIRE(embedded.size() == fresh->size());
    CHECK(seccomp_digest(embedded) == seccomp_digest(*fresh));
}

TEST_CASE("unknown syscalls are an error for user profiles and skipped for the default") {
    SeccompPolicy policy;
    policy.skip_unknown_syscalls = false;
    policy.rules.push_back({"no_such_syscall", {SeccompAction::Kind::Allow, 0}, {}});
    auto compiled = compile_seccomp(policy);
    REQUIRE_FALSE(compiled);
    CHECK(compiled.error().message.find("no_such_syscall") != std::string::npos);
    policy.skip_unknown_syscalls = true;
    CHECK(compile_seccomp(policy));
}

TEST_CASE("the default filter allows ordinary calls and refuses namespace and mount calls") {
    auto filter = precompiled_default_seccomp();
    pid_t pid = ::fork();
    if (pid == 0) {
        sock_fprog prog{static_cast<unsigned short>(filter.size()), const_cast<sock_filter*>(filter.data())};
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(10);
        if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) ::_exit(11);
        if (::getpid() <= 0) ::_exit(12);
        if (::syscall(SYS_unshare, 0x10000000 /* CLONE_NEWUSER */) != -1 || errno != EPERM) ::_exit(13);
        if (::syscall(SYS_mount, "x", "/tmp", "tmpfs", 0, nullptr) != -1 || errno != EPERM) ::_exit(14);
        if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) ::_exit(15);
        if (::syscall(SYS_io_uring_setup, 1, nullptr) != -1 || errno != ENOSYS) ::_exit(16);
        if (::syscall(SYS_keyctl, 0, 0) != -1 || errno != EPERM) ::_exit(17);
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
