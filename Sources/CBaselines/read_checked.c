/* read.c's reader with one addition: before each read lock, the per-read thread-local check
 * that registers the thread on first use, as irqemu's read lock makes it (a load and a
 * branch). It measures what that check costs in C; read.c's baseline is unchanged. */
#define _LGPL_SOURCE
#include <urcu/urcu-memb.h>

#include "CBaselines.h"
#include "clock.h"
#include "readers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct checked_object {
    _Atomic int available;
    long value;
};

static __thread int checked_registration;

__attribute__((noinline)) static void checked_register(void) {
    urcu_memb_register_thread();
    checked_registration = 1;
}

struct checked_shared {
    struct checked_object *current;
    _Atomic int stop;
    _Atomic int started;
    _Atomic uint64_t reads;
};

static void *checked_reader(void *arg) {
    struct checked_shared *s = arg;
    atomic_fetch_add(&s->started, 1);
    uint64_t n = 0;
    long sum = 0;
    if (__builtin_expect(checked_registration != 1, 0)) checked_register();
    urcu_memb_read_lock();
    struct checked_object *o = rcu_dereference(s->current);
    urcu_memb_read_unlock();
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        for (int i = 0; i < 1024; i++) {
            if (__builtin_expect(checked_registration != 1, 0)) checked_register();
            urcu_memb_read_lock();
            if (atomic_load_explicit(&o->available, memory_order_acquire)) {
                sum += o->value;
            } else {
                o = rcu_dereference(s->current);
            }
            urcu_memb_read_unlock();
        }
        n += 1024;
    }
    atomic_fetch_add(&s->reads, n + (sum == -1));
    urcu_memb_unregister_thread();
    return NULL;
}

cb_read_result cb_read_run_checked(int readers, uint64_t duration_ns) {
    struct checked_shared s;
    struct checked_object *object = calloc(1, sizeof *object);
    object->available = 1;
    object->value = 1;
    s.current = object;
    atomic_init(&s.stop, 0);
    atomic_init(&s.started, 0);
    atomic_init(&s.reads, 0);
    pthread_t threads[64];
    readers = start_readers(threads, readers, checked_reader, &s, &s.started);
    uint64_t start = now_ns(), end = start + duration_ns;
    while (now_ns() < end) sleep_until(end);
    uint64_t elapsed = now_ns() - start;
    stop_readers(threads, readers, &s.stop);
    free(object);
    cb_read_result r = { .reads = atomic_load(&s.reads), .writes = 0, .elapsed_ns = elapsed, .writer_cpu_ns = 0 };
    return r;
}
