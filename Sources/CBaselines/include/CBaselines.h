/*
 * CBaselines: the C programs irqbench measures the library against, in the same run.
 * Not a wrapper, and used by irqbench only.
 */
#ifndef IRQEMU_CBASELINES_H
#define IRQEMU_CBASELINES_H

#include <stdint.h>
#include <stddef.h>

/* ---- read side ----
 * The calling thread (the writer) must already be registered with liburcu, as the
 * library's is: irqbench registers its main thread once. Reader threads register here. */

typedef struct cb_read_result {
    uint64_t reads;         /* read-side sections completed, all readers */
    uint64_t writes;        /* revoke + publish rounds the writer completed */
    uint64_t elapsed_ns;
    uint64_t writer_cpu_ns; /* CPU time the writer (the calling thread) used over the run */
} cb_read_result;

/* `readers` threads loop on: read lock, load the current object's flag, read its value,
 * unlock (picking up the replacement when the flag is clear), in batches of 1024.
 * `writer_per_s`: 0 no writer, > 0 paced, < 0 unpaced; each write flips the flag, waits a
 * grace period and publishes a replacement. `yield_every` > 0: each reader calls
 * sched_yield() after that many batches, outside any section, and the writer runs
 * SCHED_BATCH once the readers have started. Runs `duration_ns`. */
cb_read_result cb_read_run(int readers, double writer_per_s, int yield_every, uint64_t duration_ns);

/* cb_read_run's readers, no writer, with irqemu's per-read registration check added before
 * each read lock (a thread-local load and a branch): what the check costs in C. */
cb_read_result cb_read_run_checked(int readers, uint64_t duration_ns);

/* The same with a bare pthread mutex per object instead of RCU (Alice's scheme in C), in
 * batches of 64: a read locks, checks, reads and unlocks; a write publishes a replacement
 * under a second mutex and clears the old object's flag under its lock. No grace period. */
cb_read_result cb_mutex_read_run(int readers, double writer_per_s, int yield_every, uint64_t duration_ns);

/* Latency of synchronize_rcu() with `readers` C reader threads running: `count` samples
 * into `out_ns`. */
void cb_synchronize_latency(int readers, int count, uint64_t *out_ns);

/* ---- interrupts ---- */

typedef enum cb_irq_kind { CB_IRQ_EVENTFD = 0, CB_IRQ_SIGNAL = 1, CB_IRQ_TIMERFD = 2 } cb_irq_kind;

/* The dispatcher's system calls without the library: a thread (pinned to host CPU
 * `dispatcher_cpu` if >= 0) waits in epoll_wait
 * (timeout -1, or 0 when `polling`) and reads the fd; the calling thread raises (eventfd
 * write, kill of `signo` whose handler writes an eventfd, timerfd_settime), one interrupt
 * outstanding. Stores raise→"handler" latencies into `out_ns`; returns the elapsed ns, or 0
 * on error. */
uint64_t cb_irq_run(cb_irq_kind kind, int polling, int signo, int dispatcher_cpu, int count, uint64_t *out_ns);

/* Blocks SIGRTMIN..SIGRTMAX in the calling thread (and so in threads it creates later):
 * irqbench does this first, so a real-time signal goes to a dispatcher thread, which
 * unblocks it, for the library and the C baseline alike. */
void cb_block_realtime_signals(void);

/* ---- locks ---- */

/* `iterations` lock/unlock pairs of an uncontended pthread mutex, with `depth` - 1 other
 * mutexes held (depth 1 to 3): the lock validator section's baseline. Returns elapsed ns. */
uint64_t cb_pthread_lock_run(int depth, uint64_t iterations);
/* ---- bottom halves ---- */

/* A dispatcher thread (pinned to `dispatcher_cpu` if >= 0) waits in epoll_wait and reads an
 * eventfd, then queues one item for a worker thread (pinned to `worker_cpu` if >= 0) the way
 * irqemu's workqueue does: under a pthread mutex, waking the sleeping worker with
 * pthread_cond_signal after unlocking. The calling thread raises (eventfd write), one item
 * outstanding; raise→worker-start latencies go to `out_ns` (after 500 warm-up items).
 * Returns the elapsed ns of the measured items, or 0 on error. */
uint64_t cb_workqueue_run(int dispatcher_cpu, int worker_cpu, int count, uint64_t *out_ns);

/* ---- allocation accounting ---- */

/* Calls to malloc/calloc/realloc/posix_memalign/aligned_alloc/memalign in this process
 * since it started (irqbench's malloc interposer; 0 forever in a sanitizer build). */
uint64_t cb_allocations(void);
/* Whether the interposer is compiled in. */
int cb_allocations_counted(void);
/* Bytes in use on the heap (mallinfo2().uordblks). */
uint64_t cb_heap_in_use(void);

#endif
