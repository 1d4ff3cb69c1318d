import DeviceModel
import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(3)))
struct DeviceTests {
    @Test(arguments: UnbindMode.allCases)
    func unbindRunsRemoveThenReleasesNewestFirst(mode: UnbindMode) throws {
        let order = Box<[String]>([])
        let counter = Counted.Counter()
        let handles = Handles<Counted>()
        let device = Device(name: "lifo")
        let driver = ClosureDriver { bound in
            for i in 0..<3 {
                handles.append(try Devres(bound, Counted(i, counter: counter) { id in order.update { $0.append("devres\(id)") } }))
                try bound.device.addAction(bound, name: "a\(i)") { order.update { $0.append("action\(i)") } }
            }
            handles.append(try Devres(bound, Counted(9, counter: counter) { _ in order.update { $0.append("mutex9") } }, strategy: .mutex))
        } remove: { _ in
            order.update { $0.append("remove") }
        }
        let report = try #require(Threads.onThread { () -> UnbindReport in
            try device.bind(driver)
            return try device.unbind(mode: mode)
        })
        #expect(order.get() == ["remove", "mutex9", "action2", "devres2", "action1", "devres1", "action0", "devres0"])
        #expect(report.released == 7)
        #expect(report.gracePeriods == (mode == .batched ? 1 : 3))
        #expect(counter.droppedCount == 4)
        #expect(handles.all.allSatisfy { $0.isRevoked })
        #expect(!device.isBound)
    }

    /// Danilo's plan, counted: 10,000 RCU Devres unbind with exactly one grace period
    /// batched, and one per Devres per-object.
    @Test(arguments: UnbindMode.allCases)
    func gracePeriodsPerUnbind(mode: UnbindMode) throws {
        let n = Scale.iterations(10_000, tsan: 1_000)
        let handles = Handles<Int>()
        let device = Device(name: "many")
        let report = try #require(Threads.onThread(timeout: .seconds(120)) { () -> UnbindReport in
            try device.bind(ClosureDriver(probe: { bound in
                for i in 0..<n { handles.append(try Devres(bound, i)) }
            }))
            return try device.unbind(mode: mode)
        })
        #expect(report.released == n)
        #expect(report.gracePeriods == (mode == .batched ? 1 : UInt64(n)))
        #expect(handles.all.allSatisfy { $0.tryAccess { $0 } == nil })
    }

    @Test func mutexDevresUnbindWaitsNoGracePeriod() throws {
        let device = Device(name: "mutex")
        let report = try #require(Threads.onThread { () -> UnbindReport in
            let handles = Handles<Int>()
            try device.bind(ClosureDriver(probe: { bound in
                for i in 0..<100 { handles.append(try Devres(bound, i, strategy: .mutex)) }
            }))
            return try device.unbind(mode: .batched)
        })
        #expect(report.gracePeriods == 0)
        #expect(report.released == 100)
    }

    @Test func droppingADevresBeforeUnbindReleasesItAtOnceWithoutAGracePeriod() throws {
        let counter = Counted.Counter()
        let handles = Handles<Counted>()
        let device = Device(name: "early")
        let result = try Threads.onThread { () -> (UInt64, Int, Int) in
            try device.bind(ClosureDriver(probe: { bound in
                for i in 0..<3 { handles.append(try Devres(bound, Counted(i, counter: counter))) }
            }))
            let before = RCU.gracePeriodsWaitedByCurrentThread
            handles.removeAll()
            return (RCU.gracePeriodsWaitedByCurrentThread - before, counter.droppedCount, device.resourceCount)
        }
        #expect(result?.0 == 0)
        #expect(result?.1 == 3)
        #expect(result?.2 == 0)
        let report = try Threads.onThread { try device.unbind() }
        #expect(report?.released == 0)
        #expect(report?.gracePeriods == 0)
    }

    /// Every value dropped exactly once while Devres handles are dropped and the device
    /// unbound, and, in the same rounds, Revocables are revoked while their handles are
    /// dropped, with a reader on both throughout.
    @Test(arguments: UnbindMode.allCases)
    func everyValueDroppedExactlyOnceUnderConcurrentRevokeDropAndUnbind(mode: UnbindMode) throws {
        let rounds = Scale.iterations(150, tsan: 15)
        let perRound = 24
        let counter = Counted.Counter()
        let deadReads = Atomic<Int>(0)
        let revokeWins = Atomic<Int>(0)
        for round in 0..<rounds {
            let device = Device(name: "race\(round)")
            let handles = Handles<Counted>()
            _ = try Threads.onThread {
                try device.bind(ClosureDriver(probe: { bound in
                    for i in 0..<perRound {
                        let strategy: RevocationStrategy = i % 3 == 0 ? .mutex : .rcu
                        handles.append(try Devres(bound, Counted(i, counter: counter), strategy: strategy))
                    }
                }))
            }
            let devres = Box<[Devres<Counted>?]>(handles.take().map { Optional($0) })
            let revocables = Box<[Revocable<Counted>?]>((0..<perRound).map { i in
                Revocable(Counted(i, counter: counter), strategy: i % 3 == 0 ? .mutex : .rcu)
            })
            let writersDone = Atomic<Int>(0)
            Threads.run(4, name: "race") { index in
                defer { if index < 3 { writersDone.add(1, ordering: .releasing) } }
                switch index {
                case 0:
                    _ = try? device.unbind(mode: mode)
                case 1:
                    // Drops half the Devres handles (racing unbind) and half the Revocable
                    // handles (racing their revoke on thread 2 for odd i).
                    for i in 0..<perRound {
                        if i % 2 == 0 { devres.update { $0[i] = nil } }
                        if i % 4 < 2 { revocables.update { $0[i] = nil } }
                    }
                case 2:
                    for i in stride(from: 1, to: perRound, by: 2) {
                        if let r = revocables.get()[i], (try? r.revoke()) == true { revokeWins.add(1, ordering: .relaxed) }
                    }
                default:
                    // Reads for the whole round, until unbind, the drops and the revokes have
                    // returned (then one more pass), each access ~5 µs and checked at its end.
                    func alive(_ value: borrowing Counted) -> Bool {
                        let end = monotonicNanoseconds() + 5_000
                        while monotonicNanoseconds() < end {}
                        return value.isAlive
                    }
                    let deadline = Deadline.after(.seconds(20))
                    var lastPass = false
                    while !lastPass && !deadline.hasPassed {
                        lastPass = writersDone.load(ordering: .acquiring) == 3
                        for i in 0..<perRound {
                            if let d = devres.get()[i], d.tryAccess({ alive($0) }) == false { deadReads.add(1, ordering: .relaxed) }
                            if let r = revocables.get()[i], r.tryAccess({ alive($0) }) == false { deadReads.add(1, ordering: .relaxed) }
                        }
                    }
                }
            }
            devres.set([])
            revocables.set([])
            #expect(counter.live == 0, "round \(round): every value dropped by the time unbind, revoke and the drops returned")
        }
        #expect(deadReads.load(ordering: .relaxed) == 0, "a reader saw a dropped value")
        #expect(revokeWins.load(ordering: .relaxed) > 0)
        #expect(counter.createdCount == rounds * perRound * 2)
        #expect(counter.droppedCount == rounds * perRound * 2)
    }

    /// Readers keep reading every Devres of a device, RCU and mutex, for the whole unbind.
    /// Each access lasts ~20 µs and checks, at its END, that unbind has not returned and
    /// the value has not been dropped (a flag its deinit sets: the value itself is never
    /// read after a drop); once unbind has returned no reader may be inside. So a release
    /// that does not wait for the readers that saw the value (a grace period before the
    /// flags flip, or none) is caught in the access it cut short. Unbind starts only after
    /// the readers have made a few reads (deadline-bounded), so every round overlaps.
    @Test(arguments: UnbindMode.allCases)
    func noDevresAccessIsRunningWhenUnbindReturns(mode: UnbindMode) throws {
        let rounds = Scale.iterations(100, tsan: 10)
        let perRound = 8
        let readsBeforeUnbind = 6
        let counter = Counted.Counter()
        let lateReads = Atomic<Int>(0)       // an access still running when unbind had returned
        let deadReads = Atomic<Int>(0)       // an access still running when its value was dropped
        let insideAtReturn = Atomic<Int>(0)  // unbind returned with a reader inside an access
        let readAfterUnbind = Atomic<Int>(0) // a read that got a value after unbind returned
        let starved = Atomic<Int>(0)
        let unbindFailed = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        var liveAfterRound: [Int] = []
        for round in 0..<rounds {
            let device = Device(name: "readers\(round)")
            let handles = Handles<Counted>()
            let droppedMask = Atomic<UInt64>(0)
            let bound = Threads.onThread { () -> Bool in
                (try? device.bind(ClosureDriver(probe: { bound in
                    for i in 0..<perRound {
                        let value = Counted(i, counter: counter) { id in
                            droppedMask.bitwiseOr(1 << UInt64(id), ordering: .sequentiallyConsistent)
                        }
                        handles.append(try Devres(bound, value, strategy: i % 4 == 3 ? .mutex : .rcu))
                    }
                }))) != nil
            }
            try #require(bound == true, "round \(round): bind failed")
            let devres = handles.take()
            let unbindReturned = Atomic<Bool>(false)
            let inside = Atomic<Int>(0)
            let roundReads = Atomic<Int>(0)
            Threads.run(3, name: "unbind-read") { index in
                if index == 0 {
                    let deadline = Deadline.after(.seconds(10))
                    while roundReads.load(ordering: .acquiring) < readsBeforeUnbind && !deadline.hasPassed { usleep(20) }
                    if roundReads.load(ordering: .acquiring) < readsBeforeUnbind { starved.add(1, ordering: .relaxed) }
                    if (try? device.unbind(mode: mode)) == nil { unbindFailed.add(1, ordering: .relaxed) }
                    unbindReturned.store(true, ordering: .sequentiallyConsistent)
                    if inside.load(ordering: .sequentiallyConsistent) != 0 { insideAtReturn.add(1, ordering: .relaxed) }
                } else {
                    // Each reader goes round all the values, starting at its own, until a
                    // whole pass finds every one revoked (or the deadline).
                    var n = 0
                    var i = index
                    var revokedInARow = 0
                    let deadline = Deadline.after(.seconds(20))
                    while revokedInARow < perRound && !deadline.hasPassed {
                        let bit = UInt64(1) << UInt64(i)
                        let outcome = devres[i].tryAccess { _ -> (late: Bool, dead: Bool) in
                            inside.add(1, ordering: .sequentiallyConsistent)
                            roundReads.add(1, ordering: .releasing)
                            let end = monotonicNanoseconds() + 20_000
                            while monotonicNanoseconds() < end {}
                            let late = unbindReturned.load(ordering: .sequentiallyConsistent)
                            let dead = droppedMask.load(ordering: .sequentiallyConsistent) & bit != 0
                            inside.subtract(1, ordering: .sequentiallyConsistent)
                            return (late, dead)
                        }
                        if let outcome {
                            if outcome.late { lateReads.add(1, ordering: .relaxed) }
                            if outcome.dead { deadReads.add(1, ordering: .relaxed) }
                            n += 1
                            revokedInARow = 0
                        } else {
                            revokedInARow += 1
                        }
                        i = (i + 1) % perRound
                    }
                    reads.add(n, ordering: .relaxed)
                    if devres.contains(where: { $0.tryAccess { _ in true } != nil }) { readAfterUnbind.add(1, ordering: .relaxed) }
                }
            }
            liveAfterRound.append(counter.live)
        }
        #expect(unbindFailed.load(ordering: .relaxed) == 0, "unbind threw")
        #expect(lateReads.load(ordering: .relaxed) == 0, "a Devres access was still running after unbind returned")
        #expect(deadReads.load(ordering: .relaxed) == 0, "a Devres access was still running when its value was dropped")
        #expect(insideAtReturn.load(ordering: .relaxed) == 0, "unbind returned while a reader was inside an access")
        #expect(readAfterUnbind.load(ordering: .relaxed) == 0, "a read got a value after unbind returned")
        #expect(starved.load(ordering: .relaxed) == 0, "the readers did not start within 10 s")
        #expect(reads.load(ordering: .relaxed) >= rounds * readsBeforeUnbind, "every round's unbind overlapped reads")
        #expect(liveAfterRound.allSatisfy { $0 == 0 }, "every value dropped by the time unbind returned")
        #expect(counter.droppedCount == rounds * perRound)
    }

    /// Drop of the last handle races unbind. Exactly one side drops the value, and neither
    /// returns while the value's deinit (which takes 2 ms) is still running.
    @Test(arguments: UnbindMode.allCases)
    func dropRacingUnbindWaitsForTheDeinit(mode: UnbindMode) throws {
        let rounds = Scale.iterations(60, tsan: 10)
        let early = Atomic<Int>(0)
        let counter = Counted.Counter()
        for _ in 0..<rounds {
            let finished = Atomic<Bool>(false)
            let device = Device(name: "drop-race")
            let handles = Handles<Counted>()
            _ = try Threads.onThread {
                try device.bind(ClosureDriver(probe: { bound in
                    handles.append(try Devres(bound, Counted(counter: counter) { _ in
                        usleep(2_000)
                        finished.store(true, ordering: .releasing)
                    }))
                }))
            }
            let holder = Box<Devres<Counted>?>(handles.take().first)
            Threads.run(2, name: "drop-race") { index in
                if index == 0 {
                    _ = try? device.unbind(mode: mode)
                } else {
                    holder.set(nil)
                }
                if !finished.load(ordering: .acquiring) { early.add(1, ordering: .relaxed) }
            }
        }
        let returnedEarly = early.load(ordering: .relaxed)
        #expect(returnedEarly == 0, "unbind or the drop returned while the value's deinit was running")
        #expect(counter.droppedCount == rounds)
    }

    /// A Devres dropped from inside another Devres' release during the same unbind (its
    /// owner's value held the last handle) claims and drops its own value inline: no
    /// deadlock, one drop each, both during the unbind.
    @Test(arguments: UnbindMode.allCases, [true, false])
    func nestedDevresDropDuringUnbind(mode: UnbindMode, innerFirst: Bool) throws {
        final class Owner: Sendable {
            let inner: Devres<Counted>
            let counted: Counted
            init(inner: Devres<Counted>, counted: Counted) {
                self.inner = inner
                self.counted = counted
            }
        }
        let counter = Counted.Counter()
        let device = Device(name: "nested")
        // The outer handles live until after the unbind, so their values are released by
        // it, not by a drop during probe. The inner handle lives only in the owner's value.
        let ownerHandle = Box<Devres<Owner>?>(nil)
        let countedOwnerHandle = Box<Devres<Counted>?>(nil)
        let outcome = try Threads.onThread(timeout: .seconds(20)) { () -> (droppedBeforeUnbind: Int, report: UnbindReport?) in
            try device.bind(ClosureDriver(probe: { bound in
                if innerFirst {
                    // Inner registered first: released last, after its owner already dropped
                    // its handle from inside the unbind.
                    let inner = try Devres(bound, Counted(1, counter: counter))
                    ownerHandle.set(try Devres(bound, Owner(inner: inner, counted: Counted(2, counter: counter))))
                } else {
                    // Owner first, inner second, handed over through a box the owner's
                    // value clears when it is dropped.
                    let slot = Box<Devres<Counted>?>(nil)
                    countedOwnerHandle.set(try Devres(bound, Counted(2, counter: counter) { _ in slot.set(nil) }))
                    slot.set(try Devres(bound, Counted(1, counter: counter)))
                }
            }))
            let before = counter.droppedCount
            return (before, try? device.unbind(mode: mode))
        }
        #expect(outcome?.droppedBeforeUnbind == 0, "a value was dropped before the unbind")
        #expect(outcome?.report != nil, "unbind deadlocked on the nested drop")
        #expect(outcome?.report?.released == 2)
        #expect(counter.createdCount == 2)
        #expect(counter.droppedCount == 2, "both values dropped by the unbind, each once")
        #expect(ownerHandle.get()?.isRevoked ?? true)
        #expect(countedOwnerHandle.get()?.isRevoked ?? true)
        ownerHandle.set(nil)
        countedOwnerHandle.set(nil)
        #expect(counter.droppedCount == 2)
    }

    @Test func bindAndUnbindErrorsNameTheDevice() throws {
        let device = Device(name: "dev0")
        let errors = try Threads.onThread { () -> [DeviceError?] in
            var out: [DeviceError?] = []
            out.append(caught(DeviceError.self) { try device.unbind() })
            try device.bind(ClosureDriver(name: "drv"))
            out.append(caught(DeviceError.self) { try device.bind(ClosureDriver(name: "other")) })
            try device.unbind()
            out.append(caught(DeviceError.self) { try device.unbind() })
            return out
        }
        #expect(errors?.count == 3)
        #expect(errors?[0] == .notBound(device: "dev0", operation: "unbind"))
        #expect(errors?[1] == .alreadyBound(device: "dev0", driver: "drv"))
        #expect(errors?[2] == .notBound(device: "dev0", operation: "unbind"))
        #expect(errors?[0]?.errno == .operationNotSupportedByDevice)
        #expect(errors?[1]?.errno == .resourceBusy)
    }

    /// A driver's `name` is its own code, and may ask the device about itself: the device
    /// calls it outside its lock (`driverName`, and the `alreadyBound` error of a second bind).
    @Test func aDriversNameMayCallBackIntoItsDevice() throws {
        struct Nosy: Driver {
            let device: Device
            var name: String { "nosy(bound: \(device.isBound))" }
            func probe(_ device: borrowing Device.Bound) throws {}
        }
        let device = Device(name: "dev1")
        let (name, error) = try #require(try Threads.onThread(timeout: .seconds(10)) { () -> (String?, DeviceError?) in
            try device.bind(Nosy(device: device))
            defer { _ = try? device.unbind() }
            return (device.driverName, caught(DeviceError.self) { try device.bind(ClosureDriver(name: "other")) })
        })
        #expect(name == "nosy(bound: true)")
        #expect(error == .alreadyBound(device: "dev1", driver: "nosy(bound: true)"))
    }

    /// A release action is the driver's code, and may unbind its own device: run by
    /// `DeviceAction.release()`, its drop is in flight further up the same stack, and the
    /// unbind it calls does not wait for it.
    @Test func aReleasedActionMayUnbindItsOwnDevice() throws {
        let device = Device(name: "dev-act")
        let action = Box<DeviceAction?>(nil)
        let unbound = Box<Bool?>(nil)
        let released = try Threads.onThread(timeout: .seconds(10)) { () -> Bool in
            try device.bind(ClosureDriver(probe: { bound in
                action.set(try bound.device.addAction(bound, name: "unbind") {
                    unbound.set((try? device.unbind()) != nil)
                })
            }))
            return try action.get()!.release()
        }
        #expect(released == true, "DeviceAction.release() returned")
        #expect(unbound.get() == true)
        #expect(!device.isBound)
    }

    @Test func failedProbeReleasesWhatItRegisteredNewestFirst() {
        let order = Box<[Int]>([])
        let counter = Counted.Counter()
        let device = Device(name: "failing")
        let handles = Handles<Counted>()
        let error = Threads.onThread { () -> DeviceError? in
            caught(DeviceError.self) {
                try device.bind(ClosureDriver(name: "flaky", probe: { bound in
                    for i in 0..<3 { handles.append(try Devres(bound, Counted(i, counter: counter) { id in order.update { $0.append(id) } })) }
                    throw Failure()
                }))
            }
        }
        #expect(error == .probeFailed(device: "failing", driver: "flaky", reason: "probe failed on purpose"))
        #expect(order.get() == [2, 1, 0])
        #expect(counter.live == 0)
        #expect(!device.isBound)
        #expect(device.log.messages.contains("failing: probe with driver flaky failed with error probe failed on purpose"))
        // The device can be bound again.
        #expect(Threads.onThread { (try? device.bind(ClosureDriver())) != nil } == true)
    }

    @Test func devresErrors() throws {
        let counter = Counted.Counter()
        let a = Device(name: "devA")
        let b = Device(name: "devB")
        let handles = Handles<Counted>()
        let results = try Threads.onThread { () -> [DeviceError?] in
            var out: [DeviceError?] = []
            // Devres on an unbound device (a proof made by a layer that holds one wrongly).
            out.append(caught(DeviceError.self) { _ = try Devres(Device.Bound(a), Counted(counter: counter)) })
            out.append(caught(DeviceError.self) { try a.withBound { _ in } })
            try a.bind(ClosureDriver(probe: { bound in handles.append(try Devres(bound, Counted(counter: counter))) }))
            try b.bind(ClosureDriver())
            let devres = handles.all[0]
            // Proof for another device: EINVAL.
            out.append(caught(DeviceError.self) { _ = try b.withBound { bound in try devres.access(bound) { $0.id } } })
            // Correct proof: the value (nil here stands for "read 0, no error").
            let id = try? a.withBound { bound in try devres.access(bound) { $0.id } }
            out.append(id == 0 ? nil : .notBound(device: "?", operation: "?"))
            // Access to a value already released: rebind, then read the old Devres.
            try a.unbind()
            try a.bind(ClosureDriver())
            out.append(caught(DeviceError.self) { _ = try a.withBound { bound in try devres.access(bound) { $0.id } } })
            return out
        }
        #expect(results?.count == 5)
        #expect(results?[0] == .notBound(device: "devA", operation: "Devres.init"))
        #expect(results?[1] == .notBound(device: "devA", operation: "withBound"))
        #expect(results?[2] == .wrongDevice(expected: "devA", given: "devB"))
        #expect(results?[2]?.errno == .invalidArgument)
        #expect(results.map { $0[3] == nil } == true, "the correct proof reads the value")
        #expect(results?[4] == .released(device: "devA", resource: "Devres<Counted>"))
        #expect(a.log.reports(.violation).count == 1)
        #expect(a.log.reports(.violation).first?.headline == "BUG: irqemu: access to released Devres<Counted> of device devA")
        #expect(counter.createdCount == 2 && counter.droppedCount == 2)
    }

    @Test func withBoundHoldsOffUnbindAndRefusesUnbindInside() {
        let device = Device(name: "held")
        #expect(Threads.onThread { (try? device.bind(ClosureDriver())) != nil } == true)
        let inside = DispatchSemaphore(value: 0)
        let withBoundEnded = Atomic<UInt64>(0)
        let unbindReturned = Atomic<UInt64>(0)
        let innerError = Box<DeviceError?>(nil)
        let failures = Box<[String]>([])
        Threads.run(2, name: "held") { index in
            if index == 0 {
                let ran = (try? device.withBound { _ -> Void in
                    innerError.set(caught(DeviceError.self) { try device.unbind() })
                    inside.signal()
                    usleep(100_000)
                    withBoundEnded.store(monotonicNanoseconds(), ordering: .releasing)
                }) != nil
                if !ran { failures.update { $0.append("withBound threw") } }
            } else {
                guard inside.wait(timeout: .now() + 10) == .success else {
                    failures.update { $0.append("withBound's body did not start within 10 s") }
                    return
                }
                if (try? device.unbind()) == nil { failures.update { $0.append("unbind threw") } }
                unbindReturned.store(monotonicNanoseconds(), ordering: .releasing)
            }
        }
        #expect(failures.get() == [])
        #expect(innerError.get() == .wouldDeadlock(device: "held", reason: "unbind inside withBound of the same device"))
        let (ended, returned) = (withBoundEnded.load(ordering: .acquiring), unbindReturned.load(ordering: .acquiring))
        #expect(ended != 0 && returned >= ended, "unbind returned while withBound was running")
        #expect(!device.isBound)
    }

    @Test func unbindFromTheDriversOwnRemoveIsRefused() throws {
        let device = Device(name: "self")
        let inner = Box<DeviceError?>(nil)
        let ok = try Threads.onThread { () -> Bool in
            try device.bind(ClosureDriver(remove: { bound in
                inner.set(caught(DeviceError.self) { try bound.device.unbind() })
            }))
            return (try? device.unbind()) != nil
        }
        #expect(ok == true)
        #expect(inner.get() == .wouldDeadlock(device: "self", reason: "unbind from the device's own probe, remove or release"))
    }

    @Test func releaseActionsCanBeCancelledOrReleasedEarly() throws {
        let ran = Box<[String]>([])
        let device = Device(name: "actions")
        let result = try Threads.onThread { () -> [Bool] in
            let box = Box<[DeviceAction]>([])
            try device.bind(ClosureDriver(probe: { bound in
                for name in ["a", "b", "c"] {
                    let action = try bound.device.addAction(bound, name: name) { ran.update { $0.append(name) } }
                    box.update { $0.append(action) }
                }
            }))
            let actions = box.get()
            // In atomic context both are refused, and nothing changes.
            let spin = SpinLock(())
            let refused = spin.withLock { _ in
                (try? actions[0].cancel()) == nil && (try? actions[1].release()) == nil
            }
            let cancelled = try actions[0].cancel()
            let released = try actions[1].release()
            // A second cancel or release of either returns false at once (no waiting).
            let again = [try actions[0].cancel(), try actions[0].release(), try actions[1].cancel()]
            try device.unbind()
            return [refused, cancelled, released] + again + [try actions[2].release()]
        }
        #expect(result == [true, true, true, false, false, false, false])
        #expect(ran.get() == ["b", "c"])
        #expect(device.log.reports(.sleepInAtomic).count == 2)
    }

    /// A release action that cancels or releases an older action of the same device during
    /// its unbind: both return false at once (the unbinding thread is the one that will
    /// run the older action, so waiting would wait for itself), and the older action still
    /// runs after the newer one, as in the kernel.
    @Test(arguments: UnbindMode.allCases)
    func cancellingAnOlderActionDuringUnbindDoesNotWait(mode: UnbindMode) throws {
        let ran = Box<[String]>([])
        let results = Box<[Bool]>([])
        let device = Device(name: "cancel-in-unbind")
        let unbound = try Threads.onThread(timeout: .seconds(20)) { () -> Bool in
            try device.bind(ClosureDriver(probe: { bound in
                let older = try bound.device.addAction(bound, name: "older") { ran.update { $0.append("older") } }
                try bound.device.addAction(bound, name: "newer") {
                    ran.update { $0.append("newer") }
                    results.set([(try? older.cancel()) ?? true, (try? older.release()) ?? true])
                }
            }))
            return (try? device.unbind(mode: mode)) != nil
        }
        #expect(unbound == true, "unbind returned")
        #expect(results.get() == [false, false])
        #expect(ran.get() == ["newer", "older"])
    }

}
