import Foundation
import IRQEmu
import Synchronization

/// The gallery's drivers: each a known kernel bug, each with a correct twin (`buggy: false`)
/// that must produce no report.
enum GalleryCases {
    static let all: [GalleryCase] = [
        GalleryCase(
            name: "ab-ba", bug: "two mutexes taken A then B in probe, B then A in an ioctl",
            detector: "lock validator", needsFaults: false, lines: 1) { _, buggy in ABBA(buggy: buggy) },
        GalleryCase(
            name: "irq-unsafe-spinlock", bug: "a spinlock taken by the handler and, without irqsave, by an ioctl",
            detector: "lock validator", needsFaults: false, lines: 1) { env, buggy in UnsafeSpinlock(env, buggy: buggy) },
        GalleryCase(
            name: "safe-to-unsafe", bug: "an irq-unsafe lock taken inside the handler's irq-safe one",
            detector: "lock validator", needsFaults: false, lines: 1) { env, buggy in SafeToUnsafe(env, buggy: buggy) },
        GalleryCase(
            name: "data-after-irq", bug: "handler data registered after its IRQ, read with access(bound)",
            detector: "teardown-order check", needsFaults: false, lines: 1) { env, buggy in DataAfterIRQ(env, buggy: buggy) },
        GalleryCase(
            name: "sync-under-mutex", bug: "synchronize_irq and free_irq under a mutex the threaded handler takes",
            detector: "lock validator", needsFaults: false, lines: 1) { env, buggy in SyncUnderMutex(env, buggy: buggy) },
        GalleryCase(
            name: "unbind-under-lock", bug: "unbind under a lock an access(bound) body takes",
            detector: "lock validator", needsFaults: false, lines: 1) { env, buggy in UnbindUnderLock(env, buggy: buggy) },
        GalleryCase(
            name: "same-class-nesting", bug: "two locks of one class nested without a subclass",
            detector: "lock validator", needsFaults: false, lines: 1) { _, buggy in SameClassNesting(buggy: buggy) },
        GalleryCase(
            name: "enomem-leak", bug: "an error path that leaks a request_irq when an allocation fails",
            detector: "leak check", needsFaults: true, lines: 1) { env, buggy in ENOMEMLeak(env, buggy: buggy) },
        GalleryCase(
            name: "sleep-under-spinlock", bug: "a threaded handler sleeping under a spinlock",
            detector: "atomic-context checker", needsFaults: false, lines: 1) { env, buggy in SleepUnderSpinlock(env, buggy: buggy) },
        GalleryCase(
            name: "revoke-in-handler", bug: "revoke (a grace period) from a hard-IRQ handler",
            detector: "atomic-context checker", needsFaults: false, lines: 1) { env, buggy in RevokeInHandler(env, buggy: buggy) },
        GalleryCase(
            name: "free-own-irq", bug: "free_irq from the line's own threaded handler",
            detector: "checker (warning)", needsFaults: false, lines: 1) { env, buggy in FreeOwnIRQ(env, buggy: buggy) },
        GalleryCase(
            name: "flush-under-lock", bug: "flush_work of the bottom half under the mutex the bottom half takes",
            detector: "lock validator", needsFaults: false, lines: 1) { env, buggy in FlushUnderLock(env, buggy: buggy) },
        GalleryCase(
            name: "handler-before-work", bug: "managed work registered after the IRQ whose handler queues it",
            detector: "checker (warning)", needsFaults: false, lines: 1) { env, buggy in HandlerBeforeWork(env, buggy: buggy) },
        GalleryCase(
            name: "nonsync-cancel", bug: "remove() stops the bottom half with cancel_work, which does not wait",
            detector: "non-sync cancel check", needsFaults: false, lines: 1) { env, buggy in NonSyncCancel(env, buggy: buggy) },
    ]
}

/// A handler made of closures.
final class GalleryHandler: Handler, ThreadedHandler {
    let primary: @Sendable (borrowing Device.Bound) -> ThreadedIRQReturn
    let threaded: @Sendable (borrowing Device.Bound) -> IRQReturn
    init(
        primary: @escaping @Sendable (borrowing Device.Bound) -> ThreadedIRQReturn = { _ in .handled },
        threaded: @escaping @Sendable (borrowing Device.Bound) -> IRQReturn = { _ in .handled }
    ) {
        self.primary = primary
        self.threaded = threaded
    }
    func handle(device: borrowing Device.Bound) -> IRQReturn { primary(device) == .none ? .none : .handled }
    func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn { primary(device) }
    func handleThreaded(device: borrowing Device.Bound) -> IRQReturn { threaded(device) }
}

/// A value a driver and its handlers share.
final class Slot<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    func get() -> Value? { value.withLock { $0 } }
    func set(_ newValue: Value?) { value.withLock { $0 = newValue } }
    /// Stores `newValue` and returns what was there.
    func exchange(_ newValue: Value?) -> Value? {
        value.withLock { slot in
            defer { slot = newValue }
            return slot
        }
    }
}

/// Registrations a driver keeps until unbind.
final class Kept: Sendable {
    private let objects = Mutex<[any Sendable & AnyObject]>([])
    func keep(_ object: any Sendable & AnyObject) { objects.withLock { $0.append(object) } }
}

// MARK: - The drivers

/// AB-BA: probe takes A then B; the ioctl takes B then A (the twin: A then B). The two
/// orders never meet in time (probe is over before the ioctls start): only the validator
/// can see the deadlock waiting to happen.
struct ABBA: GalleryDriver {
    let buggy: Bool
    let a = SleepingMutex(0, key: LockClassKey("gallery.A"))
    let b = SleepingMutex(0, key: LockClassKey("gallery.B"))
    init(buggy: Bool) { self.buggy = buggy }
    func probe(_ device: borrowing Device.Bound) throws {
        try a.withLock { _ in try? b.withLock { $0 += 1 } }
    }
    func work(_ thread: Int) {
        if buggy {
            _ = try? b.withLock { _ in try? a.withLock { $0 += 1 } }
        } else {
            _ = try? a.withLock { _ in try? b.withLock { $0 += 1 } }
        }
    }
}

/// The handler takes a spinlock that the ioctl takes with interrupts on: in the kernel the
/// interrupt arrives on the CPU holding it. The twin takes it with irqsave.
struct UnsafeSpinlock: GalleryDriver {
    let buggy: Bool
    let stats = SpinLock(0, key: LockClassKey("gallery.stats_lock"))
    let kept = Kept()
    init(_ env: GalleryEnvironment, buggy: Bool) { self.buggy = buggy }
    func probe(_ device: borrowing Device.Bound) throws {
        let stats = self.stats
        kept.keep(try Registration(
            try device.irq(at: 0), name: "stats", handler: GalleryHandler(primary: { _ in stats.withLock { $0 += 1 }; return .handled })))
    }
    func work(_ thread: Int) {
        if buggy { stats.withLock { $0 += 1 } } else { stats.withLockIRQSave { $0 += 1 } }
    }
}

/// The ioctl takes an irq-unsafe lock (interrupts on) and, holding the handler's irq-safe
/// lock, the same irq-unsafe lock: safe → unsafe. The twin takes it with irqsave always.
struct SafeToUnsafe: GalleryDriver {
    let buggy: Bool
    let safe = SpinLock(0, key: LockClassKey("gallery.irq_safe"))
    let unsafeLock = SpinLock(0, key: LockClassKey("gallery.irq_unsafe"))
    let kept = Kept()
    init(_ env: GalleryEnvironment, buggy: Bool) { self.buggy = buggy }
    func probe(_ device: borrowing Device.Bound) throws {
        let safe = self.safe
        kept.keep(try Registration(
            try device.irq(at: 0), name: "safe", handler: GalleryHandler(primary: { _ in safe.withLock { $0 += 1 }; return .handled })))
    }
    func work(_ thread: Int) {
        if buggy {
            if thread == 0 {
                safe.withLockIRQSave { _ in unsafeLock.withLock { $0 += 1 } }
            } else {
                unsafeLock.withLock { $0 += 1 }
            }
        } else {
            if thread == 0 {
                safe.withLockIRQSave { _ in unsafeLock.withLock { $0 += 1 } }
            } else {
                unsafeLock.withLockIRQSave { $0 += 1 }
            }
        }
    }
}

/// Handler data registered after the IRQ (LIFO unbind releases it before free_irq) and
/// read with access(bound). The twin registers the data first.
struct DataAfterIRQ: GalleryDriver {
    let buggy: Bool
    let data = Slot<Devres<Int>>()
    let kept = Kept()
    init(_ env: GalleryEnvironment, buggy: Bool) { self.buggy = buggy }
    func probe(_ device: borrowing Device.Bound) throws {
        let data = self.data
        let handler = GalleryHandler(primary: { bound in
            if let devres = data.get() { _ = try? devres.access(bound) { $0 } }
            return .handled
        })
        if buggy {
            kept.keep(try Registration(try device.irq(at: 0), name: "reader", handler: handler))
            data.set(try Devres(device, 42))
        } else {
            data.set(try Devres(device, 42))
            kept.keep(try Registration(try device.irq(at: 0), name: "reader", handler: handler))
        }
    }
}

/// remove() calls synchronize_irq and free_irq while holding the mutex the threaded
/// handler takes. The twin waits outside the mutex.
struct SyncUnderMutex: GalleryDriver {
    let buggy: Bool
    let controller: IRQController
    let irq: IRQNumber
    let state = SleepingMutex(0, key: LockClassKey("gallery.dev_mutex"))
    init(_ env: GalleryEnvironment, buggy: Bool) {
        self.buggy = buggy
        controller = env.controller
        irq = env.lines[0]
    }
    func probe(_ device: borrowing Device.Bound) throws {
        let state = self.state
        try controller.requestThreadedIRQ(irq, flags: .oneShot, name: "sync", handler: nil) { _ in
            _ = try? state.withLock { $0 += 1 }
            return .handled
        }
    }
    func remove(_ device: borrowing Device.Bound) {
        if buggy {
            _ = try? state.withLock { _ in
                try? controller.synchronizeIRQ(irq)
                _ = try? controller.freeIRQ(irq)
            }
        } else {
            try? controller.synchronizeIRQ(irq)
            _ = try? controller.freeIRQ(irq)
        }
    }
}

/// Unbind called under a lock that an access(bound) body (in the threaded handler) takes.
/// The twin unbinds without it.
struct UnbindUnderLock: GalleryDriver {
    let buggy: Bool
    let config = SleepingMutex(0, key: LockClassKey("gallery.config_lock"))
    let data = Slot<Devres<Int>>()
    let kept = Kept()
    init(_ env: GalleryEnvironment, buggy: Bool) { self.buggy = buggy }
    func probe(_ device: borrowing Device.Bound) throws {
        let devres = try Devres(device, 1)
        data.set(devres)
        let config = self.config
        kept.keep(try ThreadedRegistration(
            try device.irq(at: 0), flags: .oneShot, name: "config",
            handler: GalleryHandler(primary: { _ in .wakeThread }, threaded: { bound in
                _ = try? devres.access(bound) { _ in _ = try? config.withLock { $0 += 1 } }
                return .handled
            })))
    }
    func unbind(_ device: Device) throws {
        if buggy {
            try config.withLock { _ in _ = try? device.unbind() }
        } else {
            try device.unbind()
        }
    }
}

/// Two locks of one class (made at one site) nested without a subclass. The twin nests
/// them as subclass 1.
struct SameClassNesting: GalleryDriver {
    let buggy: Bool
    let queues = (0..<2).map { _ in SleepingMutex(0, key: LockClassKey("gallery.queue_lock")) }
    init(buggy: Bool) { self.buggy = buggy }
    func probe(_ device: borrowing Device.Bound) throws {}
    func work(_ thread: Int) {
        let (parent, child) = (queues[0], queues[1])
        if buggy {
            _ = try? parent.withLock { _ in try? child.withLock { $0 += 1 } }
        } else {
            _ = try? parent.withLock { _ in try? child.withLockNested(subclass: 1) { $0 += 1 } }
        }
    }
}

/// probe requests its IRQ by hand, then allocates; when the allocation fails (ENOMEM,
/// injected), its error path returns without free_irq. The twin frees it first.
struct ENOMEMLeak: GalleryDriver {
    let buggy: Bool
    let controller: IRQController
    let irq: IRQNumber
    let cookie = GalleryCookie()
    init(_ env: GalleryEnvironment, buggy: Bool) {
        self.buggy = buggy
        controller = env.controller
        irq = env.lines[0]
    }
    func probe(_ device: borrowing Device.Bound) throws {
        try controller.requestIRQ(irq, flags: .shared, name: "leaky", devID: cookie) { _ in .handled }
        do {
            _ = try Devres(device, [UInt8](repeating: 0, count: 64))  // the rx ring
        } catch {
            if !buggy { _ = try? controller.freeIRQ(irq, devID: cookie) }
            throw error
        }
    }
    func remove(_ device: borrowing Device.Bound) {
        _ = try? controller.freeIRQ(irq, devID: cookie)
    }
}

final class GalleryCookie: Sendable {}

/// A threaded handler that sleeps (a register poll with a delay) under a spinlock. The twin
/// sleeps after releasing it.
struct SleepUnderSpinlock: GalleryDriver {
    let buggy: Bool
    let lock = SpinLock(0, key: LockClassKey("gallery.hw_lock"))
    let kept = Kept()
    init(_ env: GalleryEnvironment, buggy: Bool) { self.buggy = buggy }
    func probe(_ device: borrowing Device.Bound) throws {
        let (lock, buggy) = (self.lock, self.buggy)
        kept.keep(try ThreadedRegistration(
            try device.irq(at: 0), flags: .oneShot, name: "poll",
            handler: GalleryHandler(primary: { _ in .wakeThread }, threaded: { _ in
                if buggy {
                    lock.withLockIRQSave { _ in try? Deadline.after(.microseconds(10)).sleep() }
                } else {
                    lock.withLockIRQSave { $0 += 1 }
                    try? Deadline.after(.microseconds(10)).sleep()
                }
                return .handled
            })))
    }
}

/// A hard-IRQ handler that revokes (a grace period) the data of a finished command. The
/// twin revokes from process context.
struct RevokeInHandler: GalleryDriver {
    let buggy: Bool
    let command = Slot<Revocable<Int>>()
    let kept = Kept()
    init(_ env: GalleryEnvironment, buggy: Bool) { self.buggy = buggy }
    func probe(_ device: borrowing Device.Bound) throws {
        let (command, buggy) = (self.command, self.buggy)
        kept.keep(try Registration(try device.irq(at: 0), name: "cmd", handler: GalleryHandler(primary: { _ in
            if buggy, let finished = command.get() { _ = try? finished.revoke() }
            return .handled
        })))
    }
    func work(_ thread: Int) {
        let previous = command.exchange(Revocable(thread))
        if !buggy { _ = try? previous?.revoke() }
    }
}

/// A threaded handler that frees its own IRQ when the device reports a fatal error. The
/// twin leaves the free to remove().
struct FreeOwnIRQ: GalleryDriver {
    let buggy: Bool
    let controller: IRQController
    let irq: IRQNumber
    init(_ env: GalleryEnvironment, buggy: Bool) {
        self.buggy = buggy
        controller = env.controller
        irq = env.lines[0]
    }
    func probe(_ device: borrowing Device.Bound) throws {
        let (controller, irq, buggy) = (self.controller, self.irq, self.buggy)
        try controller.requestThreadedIRQ(irq, flags: .oneShot, name: "fatal", handler: nil) { _ in
            if buggy { _ = try? controller.freeIRQ(irq) }
            return .handled
        }
    }
    func remove(_ device: borrowing Device.Bound) {
        _ = try? controller.freeIRQ(irq)
    }
}

// MARK: - Bottom halves

/// A work item that runs a closure. Each driver creates its `Work` itself, so each has its
/// own lock class (a `Work`'s class is where it was created), with the device's log: a
/// report made while it runs (on a kworker, where no device is in scope) goes there.
final class GalleryWork: WorkItem {
    let work: Work
    let body: @Sendable () -> Void
    init(_ work: Work, _ body: @escaping @Sendable () -> Void) {
        self.work = work
        self.body = body
    }
    func run() { body() }
}

/// A handler that queues a bottom half.
func queueing(_ item: GalleryWork) -> GalleryHandler {
    GalleryHandler(primary: { _ in
        Workqueue.system.enqueue(item)
        return .handled
    })
}

/// An ioctl waits for the rx bottom half (flush_work) holding the mutex the bottom half
/// takes: the flush waits for an item that waits for the mutex. The twin flushes first,
/// then takes the mutex. (The flush gives up after 50 ms, so a real collision here costs
/// that long instead of hanging; the validator reports before it can happen.)
struct FlushUnderLock: GalleryDriver {
    let buggy: Bool
    let state: SleepingMutex<Int>
    let rx: GalleryWork
    let kept = Kept()
    init(_ env: GalleryEnvironment, buggy: Bool) {
        self.buggy = buggy
        let state = SleepingMutex(0, key: LockClassKey("gallery.rx_state"))
        self.state = state
        rx = GalleryWork(Work(name: "rx", log: env.log)) { _ = try? state.withLock { $0 += 1 } }
    }
    func probe(_ device: borrowing Device.Bound) throws {
        try device.device.addWork(device, rx)
        kept.keep(try Registration(try device.irq(at: 0), name: "rx", handler: queueing(rx)))
    }
    func work(_ thread: Int) {
        if buggy {
            _ = try? state.withLock { _ in _ = try? rx.flushWork(timeout: .milliseconds(50)) }
        } else {
            _ = try? rx.flushWork(timeout: .milliseconds(50))
            _ = try? state.withLock { $0 += 1 }
        }
    }
}

/// The IRQ is requested before the work its handler queues is made a device resource:
/// unbind releases newest first, so it cancels the work while the handler can still queue
/// it. The twin adds the work first.
struct HandlerBeforeWork: GalleryDriver {
    let buggy: Bool
    let rx: GalleryWork
    let kept = Kept()
    init(_ env: GalleryEnvironment, buggy: Bool) {
        self.buggy = buggy
        rx = GalleryWork(Work(name: "rx-refill", log: env.log)) {}
    }
    func probe(_ device: borrowing Device.Bound) throws {
        if buggy {
            kept.keep(try Registration(try device.irq(at: 0), name: "refill", handler: queueing(rx)))
            try device.device.addWork(device, rx)
        } else {
            try device.device.addWork(device, rx)
            kept.keep(try Registration(try device.irq(at: 0), name: "refill", handler: queueing(rx)))
        }
    }
}

/// remove() stops the bottom half with cancel_work: a run in progress goes on after
/// remove (and the handler, whose IRQ is freed after remove, may queue it again). The twin
/// uses disable_work_sync.
struct NonSyncCancel: GalleryDriver {
    let buggy: Bool
    let rx: GalleryWork
    let kept = Kept()
    init(_ env: GalleryEnvironment, buggy: Bool) {
        self.buggy = buggy
        rx = GalleryWork(Work(name: "rx-poll", log: env.log)) { usleep(300) }  // polls the ring for a while
    }
    func probe(_ device: borrowing Device.Bound) throws {
        kept.keep(try Registration(try device.irq(at: 0), name: "poll", handler: queueing(rx)))
    }
    func remove(_ device: borrowing Device.Bound) {
        if buggy { rx.cancelWork() } else { _ = try? rx.disableWorkSync() }
    }
}
