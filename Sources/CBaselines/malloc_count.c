/* irqbench's malloc interposer: counts every allocation in the process, so the benchmark
 * can show the interrupt hot path allocates nothing. Defining malloc here interposes it for
 * the executable and every shared library it loads; the calls forward to glibc's
 * __libc_* entry points. Left out of sanitizer builds, whose runtimes interpose malloc. */
#include "CBaselines.h"

#include <malloc.h>
#include <stdatomic.h>
#include <errno.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CB_NO_INTERPOSER 1
#endif
#endif

static _Atomic uint64_t allocations;

uint64_t cb_allocations(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }

uint64_t cb_heap_in_use(void) { return (uint64_t)mallinfo2().uordblks; }

#ifndef CB_NO_INTERPOSER
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

int cb_allocations_counted(void) { return 1; }

#define COUNT() atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed)

void *malloc(size_t n) { COUNT(); return __libc_malloc(n); }
void *calloc(size_t n, size_t size) { COUNT(); return __libc_calloc(n, size); }
void *realloc(void *p, size_t n) { COUNT(); return __libc_realloc(p, n); }
void *memalign(size_t alignment, size_t n) { COUNT(); return __libc_memalign(alignment, n); }
void *aligned_alloc(size_t alignment, size_t n) { COUNT(); return __libc_memalign(alignment, n); }
int posix_memalign(void **out, size_t alignment, size_t n) {
    COUNT();
    void *p = __libc_memalign(alignment, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
#else
int cb_allocations_counted(void) { return 0; }
#endif
