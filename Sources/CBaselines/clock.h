/* Clock reads shared by the baselines (vDSO, no system call). */
#ifndef IRQEMU_CBASELINES_CLOCK_H
#define IRQEMU_CBASELINES_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

#endif
