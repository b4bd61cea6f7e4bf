// Process start-up on a host where a page fault is expensive.
//
// On a paravirtualised guest (ENVIRONMENT.md: PVM/Firecracker-style) every
// page a process touches for the first time costs a fault of 10-15 us; on
// such a host a `nucleus run` spends more in faults than in its own code.
// Two of them come in bulk and are cheaper taken as one:
//   - the heap: glibc's malloc grows the break and the supervisor's first
//     allocations fault in ~40 pages one by one; backed by one transparent
//     huge page instead (where THP is "always" or "madvise"), they cost one
//     fault;
//   - the program text: a static binary's code faults in 16 pages at a time
//     (fault-around); MADV_POPULATE_READ maps all of it in one call.
// Both are advice: where the kernel says no (THP "never", an old kernel
// without MADV_POPULATE_READ), start-up goes on as it would have.
#pragma once

namespace nucleus::io {

// Call before the allocations it is meant for (a constructor of the main
// program), in a process that calls release_startup_memory() once it is
// set up: until then malloc neither trims its heap nor uses mmap(2).
void prepare_startup_memory() noexcept;

// Gives back what the heap no longer uses, so that a long-lived supervisor
// does not keep the huge page, and restores malloc's defaults.
void release_startup_memory() noexcept;

}  // namespace nucleus::io
