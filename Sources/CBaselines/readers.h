/* Reader threads and the clock sleep shared by the read baselines (read.c, read_checked.c). */
#ifndef IRQEMU_CBASELINES_READERS_H
#define IRQEMU_CBASELINES_READERS_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* Sleeps until CLOCK_MONOTONIC reads `ns` (absolute). */
static inline void sleep_until(uint64_t ns) {
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Starts `readers` (at most 64) threads running `fn(arg)` and waits until each has counted
 * itself in `started`. Returns how many it started. */
static inline int start_readers(pthread_t *threads, int readers, void *(*fn)(void *), void *arg, _Atomic int *started) {
    if (readers > 64) readers = 64;
    for (int i = 0; i < readers; i++) pthread_create(&threads[i], NULL, fn, arg);
    while (atomic_load(started) < readers) sched_yield();
    return readers;
}

/* Raises `stop` and joins the threads `start_readers` started. */
static inline void stop_readers(pthread_t *threads, int readers, _Atomic int *stop) {
    atomic_store(stop, 1);
    for (int i = 0; i < readers; i++) pthread_join(threads[i], NULL);
}

#endif
