import DeviceModel
import KernelRuntime
import TestSupport
import Testing

/// Runs `body` on a fresh thread and waits for it (reports go to the device's log, which
/// its calls use).
@discardableResult
func onDeviceThread<R: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> R) throws -> R? {
    try Threads.onThread(name: name, timeout: .seconds(30)) { () throws -> R in try body() }
}

extension KernelLog {
    var lockdepHeadlines: [String] { reports(.lockdep).map(\.headline) }
}

/// The lock validator in the device model: unbind waits for `withBound` and `access(_:)`
/// bodies; a mutex Revocable's (or Devres's) lock is validated, its reader's trylock fast
/// path included, with the class of its `init` call site. Each pair of orders is taken on
/// different threads, one after the other: nothing deadlocks.
@Suite(.timeLimit(.minutes(2)))
struct LockdepDeviceTests {
    /// A device bound with one Devres<Int>, which it returns.
    func bound(_ device: Device, strategy: RevocationStrategy = .rcu) throws -> Devres<Int> {
        let handles = Handles<Int>()
        try device.bind(ClosureDriver { bound in handles.append(try Devres(bound, 1, strategy: strategy)) })
        return handles.take()[0]
    }

    @Test func unbindUnderALockThatAnAccessBodyTakesIsCircular() throws {
        try LockdepGate.run {
            let device = Device(name: "ld-access")
            let lock = SleepingMutex(0, key: LockClassKey("access-body->lock"))
            try onDeviceThread("ld-reader") {
                let devres = try self.bound(device)
                try device.withBound { bound in
                    try devres.access(bound) { _ in _ = try? lock.withLock { $0 += 1 } }
                }
            }
            #expect(device.log.reports.isEmpty)
            try onDeviceThread("ld-unbind") { try lock.withLock { _ in _ = try? device.unbind() } }
            #expect(!device.isBound, "the unbind went through")
            #expect(device.log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
            let lines = device.log.reports.first?.lines ?? []
            #expect(lines.contains { $0.hasPrefix("ld-unbind/") && $0.hasSuffix(" is trying to acquire lock:") })
            #expect(lines.contains { $0.contains(" (Device.bound@DeviceModelTests/LockdepDeviceTests.swift:") && $0.hasSuffix("{+.+.}-{0:0}:") })
            #expect(lines.last?.hasPrefix(" Device.unbind at DeviceModelTests/LockdepDeviceTests.swift:") == true)
        }
    }

    /// Unbind's cancel of managed work is `disableWorkSync`: a wait for the item, so an
    /// unbind under a lock the item takes is circular; the twin unbinds outside it.
    @Test(arguments: [true, false])
    func unbindUnderALockThatManagedWorkTakesIsCircular(underLock: Bool) throws {
        try LockdepGate.run {
            let device = Device(name: "ld-work")
            let lock = SleepingMutex(0, key: LockClassKey("managed-work->lock"))
            let job = DeviceJob { _ in _ = try? lock.withLock { $0 += 1 } }
            try onDeviceThread("ld-worker") {
                try device.bind(ClosureDriver { bound in try bound.device.addWork(bound, job) })
                Workqueue.system.enqueue(job)
                _ = try job.flushWork()
            }
            try onDeviceThread("ld-unbind") {
                if underLock { try lock.withLock { _ in _ = try? device.unbind() } } else { _ = try device.unbind() }
            }
            #expect(!device.isBound, "the unbind went through")
            #expect(job.runs.load(ordering: .relaxed) == 1)
            if underLock {
                #expect(device.log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
                let lines = device.log.reports.first?.lines ?? []
                #expect(lines.contains { $0.hasPrefix("ld-unbind/") && $0.hasSuffix(" is trying to acquire lock:") })
                #expect(lines.contains { $0.contains(" ((work_completion)(&device-job)){") })
            } else {
                #expect(device.log.reports.isEmpty)
            }
        }
    }

    @Test func unbindUnderALockThatAWithBoundBodyTakesIsCircular() throws {
        try LockdepGate.run {
            let device = Device(name: "ld-withbound")
            let lock = SleepingMutex(0)
            try onDeviceThread("ld-holder") {
                _ = try self.bound(device)
                try device.withBound { _ in _ = try? lock.withLock { $0 += 1 } }
            }
            try onDeviceThread("ld-unbind") { try lock.withLock { _ in _ = try? device.unbind() } }
            #expect(device.log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
        }
    }

    @Test func unbindOutsideTheLockIsSilent() throws {
        try LockdepGate.run {
            let device = Device(name: "ld-unbind-ok")
            let lock = SleepingMutex(0)
            try onDeviceThread("ld-reader") {
                let devres = try self.bound(device)
                try device.withBound { bound in
                    try devres.access(bound) { _ in _ = try? lock.withLock { $0 += 1 } }
                    // Nested bodies, of the same device: never a report.
                    try device.withBound { _ in _ = try? lock.withLock { $0 += 1 } }
                }
            }
            try onDeviceThread("ld-unbind") {
                try lock.withLock { $0 += 1 }
                try device.unbind()
            }
            #expect(device.log.reports.isEmpty)
        }
    }

    /// The reader's trylock fast path (uncontended) records its dependencies: taken under
    /// a mutex on one thread, and taking that mutex inside the access on another.
    @Test func theReadersTrylockFastPathRecordsDependencies() throws {
        try LockdepGate.run {
            let log = KernelLog(name: "fast-path")
            let lock = SleepingMutex(0, key: LockClassKey("fast-path->lock"))
            let revocable = Revocable(1, strategy: .mutex)
            try onDeviceThread("ld-outer") {
                KernelLog.withCurrent(log) { _ = try? lock.withLock { _ in revocable.tryAccess { $0 } } }
            }
            #expect(log.reports.isEmpty)
            try onDeviceThread("ld-inner") {
                KernelLog.withCurrent(log) { _ = revocable.tryAccess { _ in try? lock.withLock { $0 += 1 } } }
            }
            #expect(log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
            let lines = log.reports.first?.lines ?? []
            #expect(lines.contains("-> #1 (Revocable@DeviceModelTests/LockdepDeviceTests.swift:\(#line - 10)){+.+.}-{4:4}:"))
        }
    }

    /// A mutex Devres's class is its `Devres.init` call site; two of one site nested is
    /// the validator's recursive locking (a report, not a refusal: the locks differ).
    @Test func twoMutexDevresOfOneSiteNestedAreRecursive() throws {
        try LockdepGate.run {
            let device = Device(name: "ld-devres-class")
            let handles = Handles<Int>()
            let nested = try onDeviceThread("ld-nested") { () -> Int? in
                try device.bind(ClosureDriver { bound in
                    for i in 0..<2 { handles.append(try Devres(bound, i, strategy: .mutex)) }
                })
                let both = handles.take()
                defer { _ = try? device.unbind() }
                return both[0].tryAccess { a in both[1].tryAccess { b in a + b } } ?? nil
            }
            #expect(nested == 1, "both accesses went ahead")
            #expect(device.log.lockdepHeadlines == ["WARNING: possible recursive locking detected"])
            let lines = device.log.reports.first?.lines ?? []
            #expect(lines.contains("  lock(Devres@DeviceModelTests/LockdepDeviceTests.swift:\(#line - 9));"))
        }
    }
}
