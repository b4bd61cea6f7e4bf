#include "io/startup.hpp"

#include <link.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace nucleus::io {

namespace {

constexpr uintptr_t page_size = 4096;
constexpr uintptr_t huge_page_size = 2u << 20;

uintptr_t align_down(uintptr_t v, uintptr_t a) { return v & ~(a - 1); }
uintptr_t align_up(uintptr_t v, uintptr_t a) { return (v + a - 1) & ~(a - 1); }

// MADV_POPULATE_READ over every read-only loaded segment of the executable
// (text, rodata): page-table entries for pages that are in the page cache
// anyway, set up in one call instead of one fault per 16 pages.
int populate_segment(dl_phdr_info* info, size_t, void* done) {
    if (*static_cast<bool*>(done)) return 1;
    *static_cast<bool*>(done) = true;  // the first object is the executable itself
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W)) continue;
        uintptr_t start = align_down(info->dlpi_addr + ph.p_vaddr, page_size);
        uintptr_t end = align_up(info->dlpi_addr + ph.p_vaddr + ph.p_memsz, page_size);
        (void)::madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_READ);
    }
    return 1;
}

// Moves malloc's top chunk to the start of a 2 MiB-aligned window of the
// break that is advised MADV_HUGEPAGE before anything in it is touched, so
// the first allocation there takes one huge-page fault (glibc 2.36's main
// arena, which the static binary links):
//   1. one allocation large enough to reach past a whole aligned window
//      grows the break (its header and the new top's lie outside it);
//   2. the window is advised;
//   3. shrinking that allocation in place to end at the window frees the
//      rest back into the top chunk, whose header is the window's first
//      touch. The shrunk allocation stays, never used: address space below
//      the window, no memory.
void huge_heap() {
    // Requests this large come from the break, not mmap(2), and a free
    // does not trim the window away again.
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 32 << 20);
    // The top chunk ends at the break; mallinfo2's keepcost is its size.
    uintptr_t top = reinterpret_cast<uintptr_t>(::sbrk(0)) - ::mallinfo2().keepcost;
    uintptr_t window = align_up(top + page_size, huge_page_size);
    size_t span = window + huge_page_size + page_size - top;
    void* pad = std::malloc(span - 8);
    if (!pad) return;
    if (reinterpret_cast<uintptr_t>(pad) - 16 != top) {  // not where expected: leave the heap as it is
        std::free(pad);
        return;
    }
    (void)::madvise(reinterpret_cast<void*>(window), huge_page_size, MADV_HUGEPAGE);
    // In place: glibc's _int_realloc splits a chunk it shrinks.
    void* kept = std::realloc(pad, window - top - 8);
    if (kept != pad) std::free(kept);  // moved after all: nothing to keep below the window
}

}  // namespace

void prepare_startup_memory() noexcept {
    bool done = false;
    ::dl_iterate_phdr(populate_segment, &done);
    huge_heap();
}

void release_startup_memory() noexcept {
    // glibc's defaults again (mallopt(3)), then the free top of the heap
    // back to the kernel: the break shrinks below the huge page's unused
    // tail, which the kernel splits off and frees.
    ::mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    ::mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    ::malloc_trim(0);
}

}  // namespace nucleus::io
