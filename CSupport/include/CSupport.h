/*
 * CSupport: the thin C layer under irqemu.
 *
 * - liburcu (memb flavour) wrappers. The read side is `static inline` so it inlines into
 *   Swift; everything else is out of line in shim.c.
 * - A few syscalls Swift cannot call directly (variadic prctl, the SIGRTMIN macro) and the
 *   async-signal-safe handler that forwards a real-time signal to an eventfd.
 * - The per-thread state the atomic-context checker reads (plain storage, no logic).
 *
 * Every symbol is prefixed `CSupport_`. Never name a wrapper `rcu_read_lock`: liburcu's
 * flavour maps `#define` those names.
 */
#ifndef IRQEMU_CSUPPORT_H
#define IRQEMU_CSUPPORT_H

/* liburcu's static read-side functions state they meet LGPL's 10-line criterion (see
 * urcu/static/urcu-memb.h), so inlining them here is allowed in non-LGPL code. */
#define _LGPL_SOURCE
#include <urcu/urcu-memb.h>

#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/types.h>

#ifdef IRQEMU_TSAN_ANNOTATE
/* ThreadSanitizer cannot see grace periods. Every read unlock releases this token; every
 * return from synchronize_rcu (and every call_rcu callback) acquires it. `make tsan` defines
 * IRQEMU_TSAN_ANNOTATE, because __has_feature(thread_sanitizer) is invisible here. */
void __tsan_acquire(void *_Nonnull addr);
void __tsan_release(void *_Nonnull addr);
extern char CSupport_tsan_grace_period_token;
#endif

/* ---- per-thread state (storage only; the Swift `ThreadState` type owns the meaning) ---- */

/* Locks the lock validator (Swift `Lockdep`) tracks per thread: the kernel's MAX_LOCK_DEPTH. */
#define CSUPPORT_LOCKDEP_MAX_DEPTH 48

/* One lock the validator records as held by the thread (the kernel's `struct held_lock`). */
typedef struct CSupport_held_lock {
    uint64_t prev_chain_key;         /* the thread's chain key before this lock */
    const void *_Nullable instance;  /* the lock's LockdepMap, unretained */
    const uint8_t *_Nullable file;   /* where it was taken: #fileID bytes (not NUL-terminated), or NULL */
    uint32_t file_length;
    uint32_t line;
    uint32_t class_index;
    uint32_t generation;             /* the validator's generation when it was taken */
    uint32_t flags;                  /* trylock, irq context, irqs were off */
    uint32_t unused;
} CSupport_held_lock;

typedef struct CSupport_thread_state {
    int32_t rcu_registration;   /* 0 never, 1 registered, 2 unregistered at exit, 3 by hand,
                                   5 registered with reader preemption (Swift RCUThread) */
    int32_t hardirq;            /* hard-IRQ handler nesting */
    int32_t softirq;            /* call_rcu callback nesting */
    int32_t preempt;            /* spinlocks held */
    int32_t irqs_off;           /* irqs-off sections (spin_lock_irqsave, local_irq_disable) */
    int32_t cpu;                /* emulated CPU index of a dispatcher thread, else -1 */
    uint64_t grace_periods;     /* grace periods this thread waited for */
    void *_Nullable log;        /* unretained KernelLog in scope on this thread */
    void *_Nullable irq_thread; /* unretained identity of the IRQ thread running here */
    int32_t tid;                /* cached gettid(), 0 until first asked */
    int32_t held_lock_count;    /* Revocable mutexes held for a reader (may exceed 8) */
    void *_Nullable held_locks[8]; /* the first 8 of them, oldest first */
    void *_Nullable running_handler; /* unretained mark of the IRQ handler running here, if any */
    void *_Nullable device_scope;    /* unretained device whose driver callback runs here, if any */
    uint64_t lockdep_chain_key;     /* the validator's running chain key */
    int32_t lockdep_depth;          /* entries used in `lockdep_held` */
    int32_t lockdep_unused;
    CSupport_held_lock lockdep_held[CSUPPORT_LOCKDEP_MAX_DEPTH]; /* oldest first */
} CSupport_thread_state;

extern __thread CSupport_thread_state CSupport_tls;

static inline CSupport_thread_state *_Nonnull CSupport_this_thread(void) { return &CSupport_tls; }

/* The calling thread's `held_locks` array (Swift sees a C array as a tuple). */
static inline void *_Nullable *_Nonnull CSupport_this_thread_held_locks(void) { return CSupport_tls.held_locks; }

/* The calling thread's `lockdep_held` array. */
static inline CSupport_held_lock *_Nonnull CSupport_this_thread_lockdep_held(void) { return CSupport_tls.lockdep_held; }

/* ---- RCU read side: inlined ---- */

static inline void CSupport_rcu_read_lock(void) { urcu_memb_read_lock(); }

static inline void CSupport_rcu_read_unlock(void) {
#ifdef IRQEMU_TSAN_ANNOTATE
    __tsan_release(&CSupport_tsan_grace_period_token);
#endif
    urcu_memb_read_unlock();
}

static inline bool CSupport_rcu_read_ongoing(void) { return urcu_memb_read_ongoing() != 0; }

/* Read-side nesting depth of the calling thread (0 outside a read-side section). */
static inline unsigned long CSupport_rcu_read_depth(void) {
    return (URCU_TLS(urcu_memb_reader).ctr & URCU_GP_CTR_NEST_MASK) / URCU_GP_COUNT;
}

/* Whether liburcu counts the calling thread as registered. liburcu registers its own
 * call_rcu threads, so this can be true on a thread irqemu never registered. */
static inline bool CSupport_rcu_thread_is_registered(void) {
    return URCU_TLS(urcu_memb_reader).registered != 0;
}

/* ---- RCU update side: out of line ---- */

void CSupport_rcu_register_thread(void);
void CSupport_rcu_unregister_thread(void);
void CSupport_synchronize_rcu(void);
void CSupport_rcu_barrier(void);
bool CSupport_rcu_has_membarrier(void);
/* pthread_atfork with liburcu's call_rcu fork hooks: its call_rcu threads pause across a
 * fork() and are recreated in the child. Returns pthread_atfork's result. */
int CSupport_rcu_install_fork_hooks(void);

/* A call_rcu request. `fn(self)` runs on liburcu's call_rcu thread after a grace period;
 * the caller owns the memory and frees it in `fn`. */
typedef struct CSupport_rcu_callback {
    struct rcu_head head;
    void (*_Nonnull fn)(struct CSupport_rcu_callback *_Nonnull self);
    void *_Nullable context;
} CSupport_rcu_callback;

void CSupport_call_rcu(CSupport_rcu_callback *_Nonnull callback);

/* ---- syscalls Swift should not call directly ---- */

int CSupport_sigrtmin(void);
int CSupport_sigrtmax(void);

/* Forward `signo` to `eventfd`: installs (once per signal, for the life of the process) an
 * SA_RESTART handler that saves errno, adds 1 to the eventfd current for that signal, and
 * restores errno. `eventfd` -1 detaches: later signals are counted in `stray` instead.
 * When this returns 0 the handler is in place, even if another thread is installing it.
 * A handler that loaded the old eventfd just before a detach may still write to it: never
 * close an eventfd once attached (irqemu keeps one per signal for the life of the process).
 * Returns 0 or an errno value. */
int CSupport_signal_forward(int signo, int eventfd);
/* Signals that arrived for `signo` while no eventfd was attached. */
uint64_t CSupport_signal_stray_count(int signo);

/* epoll_ctl with the event built here (struct epoll_event is a packed union Swift sees as
 * unsafe). Returns 0, or -1 with errno set. */
int CSupport_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/* epoll_wait that stores only each event's 64-bit data into `tags`. Returns the count, or
 * -1 with errno set. */
int CSupport_epoll_wait(int epfd, uint64_t *_Nonnull tags, int max_events, int timeout);

/* Unblocks SIGRTMIN..SIGRTMAX in the calling thread (threads created from a libdispatch
 * worker inherit a mask that blocks every signal). Returns 0 or an errno value. */
int CSupport_unblock_realtime_signals(void);

/* posix_spawn with a clean signal state for the child: an empty mask and default
 * dispositions (an exec keeps the parent's mask, and libdispatch workers block all
 * signals), and `fd_count` (from, to) pairs dup2'ed. Returns 0 or an errno value. */
int CSupport_spawn(pid_t *_Nonnull pid, const char *_Nonnull path, char *_Nullable const *_Nonnull argv,
                   const int *_Nullable fd_pairs, int fd_count);

/* prctl(PR_SET_PDEATHSIG, signo); returns 0 or an errno value. */
int CSupport_set_parent_death_signal(int signo);
/* prctl(PR_SET_NAME) / (PR_GET_NAME) on the calling thread. */
int CSupport_set_thread_name(const char *_Nonnull name);
int CSupport_get_thread_name(char *_Nonnull buffer16);
/* prctl(PR_SET_TIMERSLACK, ns) on the calling thread: how late the kernel may wake its timed
 * sleeps (50 us by default). Returns 0 or an errno value. */
int CSupport_set_timer_slack(unsigned long ns);
pid_t CSupport_gettid(void);
/* The host CPU the calling thread runs on now (sched_getcpu: vDSO, no system call), or -1. */
int CSupport_current_host_cpu(void);
/* Pins the calling thread to host CPU `cpu` (sched_setaffinity); returns 0 or an errno. */
int CSupport_pin_to_cpu(int cpu);
/* Host CPUs this process may run on. */
int CSupport_online_cpus(void);

#endif /* IRQEMU_CSUPPORT_H */
