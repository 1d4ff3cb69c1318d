/* The bottom-half baseline: what a hard-IRQ handler queueing work costs, without the
 * library. A dispatcher thread waits in epoll_wait, reads the eventfd (the interrupt), and
 * wakes a worker thread with the primitive irqemu's workqueue uses: a pthread mutex and one
 * condition variable per worker, signalled after the mutex is dropped. The worker records
 * the raise-to-start latency. */
#include "CBaselines.h"
#include "clock.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct wq_shared {
    int dispatcher_cpu, worker_cpu;
    int epfd, fd;
    int count, warmup;
    uint64_t *out;
    _Atomic uint64_t raised_at;
    _Atomic int handled;
    _Atomic int stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int queued;     /* items queued and not taken (under lock) */
    int idle;       /* the worker sleeps on `wake` (under lock) */
};

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void *wq_dispatcher(void *arg) {
    struct wq_shared *s = arg;
    pin(s->dispatcher_cpu);
    struct epoll_event events[64];
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        int n = epoll_wait(s->epfd, events, 64, 100);
        for (int i = 0; i < n; i++) {
            uint64_t value;
            if (read(s->fd, &value, sizeof value) != sizeof value) continue;
            /* The hard handler's enqueue: lock, link, take an idle worker, unlock, wake. */
            pthread_mutex_lock(&s->lock);
            s->queued++;
            int wake = s->idle;
            s->idle = 0;
            pthread_mutex_unlock(&s->lock);
            if (wake) pthread_cond_signal(&s->wake);
        }
    }
    return NULL;
}

static void *wq_worker(void *arg) {
    struct wq_shared *s = arg;
    pin(s->worker_cpu);
    pthread_mutex_lock(&s->lock);
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        if (s->queued == 0) {
            /* Idle until woken, with no timeout, as irqemu's kworkers sleep. */
            s->idle = 1;
            while (s->idle && !atomic_load_explicit(&s->stop, memory_order_relaxed)) pthread_cond_wait(&s->wake, &s->lock);
            continue;
        }
        s->queued--;
        pthread_mutex_unlock(&s->lock);
        /* The work item's start. */
        uint64_t t1 = now_ns();
        int k = atomic_load_explicit(&s->handled, memory_order_relaxed);
        if (k >= s->warmup && k - s->warmup < s->count)
            s->out[k - s->warmup] = t1 - atomic_load_explicit(&s->raised_at, memory_order_acquire);
        atomic_store_explicit(&s->handled, k + 1, memory_order_release);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

uint64_t cb_workqueue_run(int dispatcher_cpu, int worker_cpu, int count, uint64_t *out_ns) {
    struct wq_shared s;
    memset(&s, 0, sizeof s);
    s.dispatcher_cpu = dispatcher_cpu;
    s.worker_cpu = worker_cpu;
    s.count = count;
    s.warmup = 500;
    s.out = out_ns;
    pthread_mutex_init(&s.lock, NULL);
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&s.wake, &attributes);
    pthread_condattr_destroy(&attributes);
    s.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s.fd < 0) return 0;
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
    epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.fd, &ev);
    pthread_t worker, dispatcher;
    pthread_create(&worker, NULL, wq_worker, &s);
    pthread_create(&dispatcher, NULL, wq_dispatcher, &s);
    uint64_t start = 0;
    for (int i = 0; i < s.warmup + count; i++) {
        if (i == s.warmup) start = now_ns();
        atomic_store_explicit(&s.raised_at, now_ns(), memory_order_release);
        uint64_t one = 1;
        ssize_t unused = write(s.fd, &one, sizeof one);
        (void)unused;
        while (atomic_load_explicit(&s.handled, memory_order_acquire) <= i) { }
    }
    uint64_t elapsed = now_ns() - start;
    atomic_store(&s.stop, 1);
    pthread_mutex_lock(&s.lock);
    s.idle = 0;
    pthread_mutex_unlock(&s.lock);
    pthread_cond_signal(&s.wake);
    pthread_join(dispatcher, NULL);
    pthread_join(worker, NULL);
    close(s.epfd);
    close(s.fd);
    pthread_cond_destroy(&s.wake);
    pthread_mutex_destroy(&s.lock);
    return elapsed;
}
