// What a clone3(CLONE_VM) parent needs around the call: the child's own
// stack and a window in which no signal handler can run on it.
#pragma once

#include <signal.h>
#include <sys/mman.h>

#include <cstddef>

namespace nucleus::isolation {

// An mmap'd stack for a CLONE_VM child, with a guard page below; the
// parent never touches it.
class CloneStack {
public:
    explicit CloneStack(size_t size) : size_(size) {
        base_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                       -1, 0);
        if (base_ == MAP_FAILED) base_ = nullptr;
        else ::mprotect(base_, 4096, PROT_NONE);
    }
    ~CloneStack() {
        if (base_) ::munmap(base_, size_);
    }
    CloneStack(const CloneStack&) = delete;
    CloneStack& operator=(const CloneStack&) = delete;
    void* base() const { return base_; }
    size_t size() const { return size_; }

private:
    size_t size_;
    void* base_ = nullptr;
};

// Blocks every signal for its lifetime, so none of our handlers can run on
// the child between clone3 and its own reset (pthread_sigmask(3)).
class SignalsBlocked {
public:
    SignalsBlocked() {
        sigset_t all;
        sigfillset(&all);
        ::pthread_sigmask(SIG_SETMASK, &all, &saved_);
    }
    ~SignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
    SignalsBlocked(const SignalsBlocked&) = delete;
    SignalsBlocked& operator=(const SignalsBlocked&) = delete;

private:
    sigset_t saved_;
};

}  // namespace nucleus::isolation
