/* The interrupt baselines: what the dispatcher does, without the library. */
#include "CBaselines.h"
#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static _Atomic int signal_wire = -1;

static void signal_to_eventfd(int signo) {
    (void)signo;
    int saved = errno;
    uint64_t one = 1;
    ssize_t unused = write(atomic_load(&signal_wire), &one, sizeof one);
    (void)unused;
    errno = saved;
}

struct irq_shared {
    int cpu;
    int epfd;
    int fd;
    int polling;
    int count;
    int warmup;
    uint64_t *out;
    _Atomic uint64_t raised_at;
    _Atomic int handled;
    _Atomic int stop;
};

static void *dispatcher(void *arg) {
    struct irq_shared *s = arg;
    if (s->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(s->cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    /* Like the library's dispatcher: this CPU takes the real-time signals. */
    sigset_t rt;
    sigemptyset(&rt);
    for (int signo = SIGRTMIN; signo <= SIGRTMAX; signo++) sigaddset(&rt, signo);
    pthread_sigmask(SIG_UNBLOCK, &rt, NULL);
    struct epoll_event events[64];
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        int n = epoll_wait(s->epfd, events, 64, s->polling ? 0 : 100);
        for (int i = 0; i < n; i++) {
            uint64_t value;
            if (read(s->fd, &value, sizeof value) != sizeof value) continue;
            uint64_t t1 = now_ns();
            int k = atomic_load_explicit(&s->handled, memory_order_relaxed);
            if (k >= s->warmup && k - s->warmup < s->count)
                s->out[k - s->warmup] = t1 - atomic_load_explicit(&s->raised_at, memory_order_acquire);
            atomic_store_explicit(&s->handled, k + 1, memory_order_release);
        }
    }
    return NULL;
}

uint64_t cb_irq_run(cb_irq_kind kind, int polling, int signo, int dispatcher_cpu, int count, uint64_t *out_ns) {
    struct irq_shared s;
    memset(&s, 0, sizeof s);
    s.cpu = dispatcher_cpu;
    s.warmup = 500;
    s.polling = polling;
    s.count = count;
    s.out = out_ns;
    int raise_fd = -1;
    struct sigaction old_action;
    if (kind == CB_IRQ_TIMERFD) {
        s.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    } else {
        s.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    if (s.fd < 0) return 0;
    raise_fd = s.fd;
    if (kind == CB_IRQ_SIGNAL) {
        atomic_store(&signal_wire, s.fd);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = signal_to_eventfd;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(signo, &sa, &old_action);
    }
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
    epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.fd, &ev);
    pthread_t thread;
    pthread_create(&thread, NULL, dispatcher, &s);

    pid_t self = getpid();
    /* The same warm-up as the library's runs: the first interrupts pay for thread start and
     * migration; they are neither timed nor recorded. */
    const int warmup = s.warmup;
    uint64_t start = 0;
    for (int i = 0; i < warmup + count; i++) {
        if (i == warmup) start = now_ns();
        atomic_store_explicit(&s.raised_at, now_ns(), memory_order_release);
        switch (kind) {
        case CB_IRQ_EVENTFD: {
            uint64_t one = 1;
            ssize_t unused = write(raise_fd, &one, sizeof one);
            (void)unused;
            break;
        }
        case CB_IRQ_SIGNAL:
            kill(self, signo);
            break;
        case CB_IRQ_TIMERFD: {
            struct itimerspec spec = { .it_value = { .tv_sec = 0, .tv_nsec = 1 } };
            timerfd_settime(raise_fd, 0, &spec, NULL);
            break;
        }
        }
        while (atomic_load_explicit(&s.handled, memory_order_acquire) <= i) { }
    }
    uint64_t elapsed = now_ns() - start;
    atomic_store(&s.stop, 1);
    pthread_join(thread, NULL);
    if (kind == CB_IRQ_SIGNAL) {
        sigaction(signo, &old_action, NULL);
        atomic_store(&signal_wire, -1);
    }
    close(s.epfd);
    close(s.fd);
    return elapsed;
}

void cb_block_realtime_signals(void) {
    sigset_t rt;
    sigemptyset(&rt);
    for (int signo = SIGRTMIN; signo <= SIGRTMAX; signo++) sigaddset(&rt, signo);
    pthread_sigmask(SIG_BLOCK, &rt, NULL);
}
