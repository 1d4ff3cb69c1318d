/* The lock validator's baseline: a bare pthread mutex, uncontended. */
#include "CBaselines.h"

#include <pthread.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cb_pthread_lock_run(int depth, uint64_t iterations) {
    pthread_mutex_t locks[3] = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER };
    int outer = depth > 3 ? 2 : depth - 1;
    for (int i = 0; i < outer; i++) pthread_mutex_lock(&locks[i]);
    pthread_mutex_t *measured = &locks[outer];
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < iterations; i++) {
        pthread_mutex_lock(measured);
        __asm__ volatile("" ::: "memory");
        pthread_mutex_unlock(measured);
    }
    uint64_t elapsed = now_ns() - start;
    for (int i = outer - 1; i >= 0; i--) pthread_mutex_unlock(&locks[i]);
    return elapsed;
}
