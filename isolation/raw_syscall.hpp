// Raw system calls for the child side of a spawn.
//
// The child runs with CLONE_VM: it shares our address space *and* our TLS,
// so any libc call that sets errno would write the parent's errno, and
// anything that allocates could take a malloc lock the parent holds. The
// child therefore calls the kernel directly: these return the kernel's
// result, -errno on failure, and touch no memory but their arguments.
#pragma once

#if !defined(__x86_64__)
#error "nucleus's child-side raw syscalls are written for x86_64 only"
#endif

namespace nucleus::raw {

inline long syscall6(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0) noexcept {
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

template <class... Args>
inline long call(long n, Args... args) noexcept {
    return syscall6(n, (long)args...);
}

}  // namespace nucleus::raw
