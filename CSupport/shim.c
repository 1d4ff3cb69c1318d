/* Out-of-line parts of CSupport. Wrappers only: the policy lives in Swift. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CSupport.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <unistd.h>

__thread CSupport_thread_state CSupport_tls = { .cpu = -1 };

#ifdef IRQEMU_TSAN_ANNOTATE
char CSupport_tsan_grace_period_token;
#define TSAN_ACQUIRE_GRACE_PERIOD() __tsan_acquire(&CSupport_tsan_grace_period_token)
/* liburcu's call_rcu queue is lock-free and uninstrumented: hand the request over. */
#define TSAN_RELEASE(p) __tsan_release(p)
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define TSAN_ACQUIRE_GRACE_PERIOD() do { } while (0)
#define TSAN_RELEASE(p) do { } while (0)
#define TSAN_ACQUIRE(p) do { } while (0)
#endif

void CSupport_rcu_register_thread(void) { urcu_memb_register_thread(); }
void CSupport_rcu_unregister_thread(void) { urcu_memb_unregister_thread(); }

void CSupport_synchronize_rcu(void) {
    urcu_memb_synchronize_rcu();
    TSAN_ACQUIRE_GRACE_PERIOD();
}

void CSupport_rcu_barrier(void) {
    urcu_memb_barrier();
    TSAN_ACQUIRE_GRACE_PERIOD();
}

bool CSupport_rcu_has_membarrier(void) { return urcu_memb_has_sys_membarrier != 0; }

int CSupport_rcu_install_fork_hooks(void) {
    return pthread_atfork(urcu_memb_call_rcu_before_fork, urcu_memb_call_rcu_after_fork_parent,
                          urcu_memb_call_rcu_after_fork_child);
}

static void CSupport_call_rcu_trampoline(struct rcu_head *head) {
    CSupport_rcu_callback *callback = caa_container_of(head, CSupport_rcu_callback, head);
    TSAN_ACQUIRE(callback);
    TSAN_ACQUIRE_GRACE_PERIOD();
    callback->fn(callback);
}

void CSupport_call_rcu(CSupport_rcu_callback *callback) {
    TSAN_RELEASE(callback);
    urcu_memb_call_rcu(&callback->head, CSupport_call_rcu_trampoline);
}

int CSupport_sigrtmin(void) { return SIGRTMIN; }
int CSupport_sigrtmax(void) { return SIGRTMAX; }

/* Indexed by signal number; written by CSupport_signal_forward, read by the handler. */
static _Atomic int forward_fd[_NSIG];
static _Atomic uint64_t stray[_NSIG];
static _Atomic bool installed[_NSIG];

static void forward_handler(int signo) {
    int saved = errno;
    int fd = atomic_load_explicit(&forward_fd[signo], memory_order_acquire);
    if (fd >= 0) {
        uint64_t one = 1;
        ssize_t unused = write(fd, &one, sizeof one);
        (void)unused;
    } else {
        atomic_fetch_add_explicit(&stray[signo], 1, memory_order_relaxed);
    }
    errno = saved;
}

/* Serializes installs: `installed` is published only after sigaction has returned, so no
 * caller returns 0 while the default action (terminate, for a real-time signal) is in place. */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

int CSupport_signal_forward(int signo, int eventfd) {
    if (signo <= 0 || signo >= _NSIG) return EINVAL;
    atomic_store_explicit(&forward_fd[signo], eventfd, memory_order_release);
    if (atomic_load_explicit(&installed[signo], memory_order_acquire)) return 0;
    int err = 0;
    pthread_mutex_lock(&install_lock);
    if (!atomic_load_explicit(&installed[signo], memory_order_relaxed)) {
        struct sigaction sa = { 0 };
        sa.sa_handler = forward_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(signo, &sa, NULL) == 0) {
            atomic_store_explicit(&installed[signo], true, memory_order_release);
        } else {
            err = errno;
        }
    }
    pthread_mutex_unlock(&install_lock);
    return err;
}

uint64_t CSupport_signal_stray_count(int signo) {
    if (signo <= 0 || signo >= _NSIG) return 0;
    return atomic_load_explicit(&stray[signo], memory_order_relaxed);
}

int CSupport_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event = { .events = events, .data.u64 = data };
    return epoll_ctl(epfd, op, fd, &event);
}

int CSupport_epoll_wait(int epfd, uint64_t *tags, int max_events, int timeout) {
    struct epoll_event events[64];
    if (max_events > 64) max_events = 64;
    int n = epoll_wait(epfd, events, max_events, timeout);
    for (int i = 0; i < n; i++) tags[i] = events[i].data.u64;
    return n;
}

int CSupport_unblock_realtime_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    for (int signo = SIGRTMIN; signo <= SIGRTMAX; signo++) sigaddset(&set, signo);
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

extern char **environ;

int CSupport_spawn(pid_t *pid, const char *path, char *const *argv, const int *fd_pairs, int fd_count) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t empty, all;
    posix_spawn_file_actions_init(&actions);
    for (int i = 0; i < fd_count; i++) posix_spawn_file_actions_adddup2(&actions, fd_pairs[2 * i], fd_pairs[2 * i + 1]);
    posix_spawnattr_init(&attributes);
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &empty);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(pid, path, &actions, &attributes, argv, environ);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int CSupport_set_parent_death_signal(int signo) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signo, 0, 0, 0) == 0 ? 0 : errno;
}

int CSupport_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0) == 0 ? 0 : errno;
}

int CSupport_get_thread_name(char *buffer16) {
    return prctl(PR_GET_NAME, (unsigned long)buffer16, 0, 0, 0) == 0 ? 0 : errno;
}

int CSupport_set_timer_slack(unsigned long ns) {
    return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) == 0 ? 0 : errno;
}

int CSupport_current_host_cpu(void) { return sched_getcpu(); }

pid_t CSupport_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int CSupport_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

int CSupport_online_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    return CPU_COUNT(&set);
}
