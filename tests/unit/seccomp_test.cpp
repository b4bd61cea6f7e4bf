#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>
#include <cerrno>
#include <linux/audit.h>
#include <linux/seccomp.h>

#include <cstring>
#include <span>
#include <string>

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
        if (::syscall(SYS_unshare, CLONE_NEWUSER) != -1 || errno != EPERM) ::_exit(13);
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

namespace {

// A classic-BPF interpreter for seccomp programs, enough for what libseccomp
// emits (absolute loads of seccomp_data, ALU on A, jumps, returns, scratch
// memory). An instruction it does not know fails the test rather than
// guessing.
struct Verdict {
    bool ok = false;
    uint32_t value = 0;
    std::string problem;
};

Verdict run_bpf(std::span<const sock_filter> program, const seccomp_data& data) {
    uint32_t a = 0, x = 0;
    uint32_t mem[BPF_MEMWORDS] = {};
    auto word_at = [&](uint32_t offset, uint32_t& out) {
        if (offset % 4 != 0 || offset + 4 > sizeof data) return false;
        std::memcpy(&out, reinterpret_cast<const char*>(&data) + offset, 4);
        return true;
    };
    for (size_t pc = 0; pc < program.size(); ++pc) {
        const sock_filter& insn = program[pc];
        switch (insn.code) {
            case BPF_LD | BPF_W | BPF_ABS:
                if (!word_at(insn.k, a)) return {false, 0, "bad load offset " + std::to_string(insn.k)};
                break;
            case BPF_LD | BPF_MEM:
                a = mem[insn.k % BPF_MEMWORDS];
                break;
            case BPF_LDX | BPF_MEM:
                x = mem[insn.k % BPF_MEMWORDS];
                break;
            case BPF_LD | BPF_IMM:
                a = insn.k;
                break;
            case BPF_LDX | BPF_IMM:
                x = insn.k;
                break;
            case BPF_ST:
                mem[insn.k % BPF_MEMWORDS] = a;
                break;
            case BPF_STX:
                mem[insn.k % BPF_MEMWORDS] = x;
                break;
            case BPF_MISC | BPF_TAX:
                x = a;
                break;
            case BPF_MISC | BPF_TXA:
                a = x;
                break;
            case BPF_ALU | BPF_AND | BPF_K:
                a &= insn.k;
                break;
            case BPF_ALU | BPF_OR | BPF_K:
                a |= insn.k;
                break;
            case BPF_ALU | BPF_AND | BPF_X:
                a &= x;
                break;
            case BPF_JMP | BPF_JA:
                pc += insn.k;
                break;
            case BPF_JMP | BPF_JEQ | BPF_K:
                pc += (a == insn.k) ? insn.jt : insn.jf;
                break;
            case BPF_JMP | BPF_JGT | BPF_K:
                pc += (a > insn.k) ? insn.jt : insn.jf;
                break;
            case BPF_JMP | BPF_JGE | BPF_K:
                pc += (a >= insn.k) ? insn.jt : insn.jf;
                break;
            case BPF_JMP | BPF_JSET | BPF_K:
                pc += (a & insn.k) ? insn.jt : insn.jf;
                break;
            case BPF_JMP | BPF_JEQ | BPF_X:
                pc += (a == x) ? insn.jt : insn.jf;
                break;
            case BPF_JMP | BPF_JGT | BPF_X:
                pc += (a > x) ? insn.jt : insn.jf;
                break;
            case BPF_JMP | BPF_JGE | BPF_X:
                pc += (a >= x) ? insn.jt : insn.jf;
                break;
            case BPF_RET | BPF_K:
                return {true, insn.k, {}};
            case BPF_RET | BPF_A:
                return {true, a, {}};
            default:
                return {false, 0, "unknown opcode " + std::to_string(insn.code) + " at " + std::to_string(pc)};
        }
    }
    return {false, 0, "ran off the end"};
}

}  // namespace

TEST_CASE("the binary-tree and linear layouts of the default filter decide every call identically") {
    auto tree = compile_seccomp(default_seccomp_policy(), SeccompLayout::BinaryTree);
    auto linear = compile_seccomp(default_seccomp_policy(), SeccompLayout::Linear);
    REQUIRE(tree);
    REQUIRE(linear);
    REQUIRE(seccomp_digest(*tree) != seccomp_digest(*linear));
    // Every syscall number (and some beyond), on the native, x32 and a
    // foreign architecture, with first arguments that exercise the clone
    // and personality conditions.
    const uint32_t arches[] = {AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, 0xdeadbeef};
    const uint64_t first_args[] = {0,
                                   0x8,
                                   0x11,
                                   0x20000,
                                   0x20008,
                                   0xffffffff,
                                   0x10000000,
                                   0x20000000,
                                   0x00020000 /* CLONE_NEWNS */,
                                   0x80,
                                   0x7e020000,
                                   ~0ULL,
                                   0x100000000ULL};
    size_t compared = 0, allowed = 0;
    for (uint32_t arch : arches) {
        for (int nr = 0; nr < 600; ++nr) {
            for (int x32 = 0; x32 < 2; ++x32) {
                for (uint64_t arg : first_args) {
                    seccomp_data data{};
                    data.nr = nr | (x32 ? 0x40000000 : 0);
                    data.arch = arch;
                    data.args[0] = arg;
                    Verdict t = run_bpf(*tree, data);
                    Verdict l = run_bpf(*linear, data);
                    INFO("nr " << data.nr << " arch " << arch << " arg0 " << arg);
                    REQUIRE(t.problem.empty());
                    REQUIRE(l.problem.empty());
                    REQUIRE(t.ok);
                    REQUIRE(l.ok);
                    REQUIRE(t.value == l.value);
                    ++compared;
                    if (t.value == SECCOMP_RET_ALLOW) ++allowed;
                }
            }
        }
    }
    CHECK(compared == 3 * 600 * 2 * std::size(first_args));
    // The interpreter must be seeing real decisions, not one answer for all.
    CHECK(allowed > 1000);
    CHECK(allowed < compared / 2);
}
