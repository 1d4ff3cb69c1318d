import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// The proof that no wait of irqemu's async calls parks a thread of Swift's concurrency
/// pool (as many threads as CPUs, no overcommit).
///
/// Every kind of wait is set up to be held: a reader inside its RCU read-side section (the
/// grace period), a reader holding a mutex Revocable's lock, threaded handlers held in
/// their run (free_irq's wait for the thread and its stop, synchronize_irq, disable_irq,
/// quiesce, a registration's trySynchronize), a `withBound` holder (unbind), an
/// `access(bound)` reader inside a handler (unbind's release of that Devres), a Devres
/// drop in flight on another thread (unbind's wait for it), and a device's managed work
/// held in its run (unbind's managed cancel, `disableWorkSync`, which an async unbind runs
/// on a runtime thread; and the item's `flushWork`, `cancelWorkSync`, `disableWorkSync`,
/// its queue's `flushQueue`, awaited directly). Then more tasks than the pool
/// has threads each await one of them, every kind at least as many times as the pool has
/// threads, and only a task queued behind all of them opens the gates. If any kind of wait
/// parked its pool thread, all the pool's threads would park on its copies, the releasing
/// task would never run, and the test would hang: a watchdog thread opens the gates after a
/// deadline instead, and the test records the failure.
///
/// Meanwhile two reader threads read and an IRQ storm runs on another controller.
///
/// The tasks run on a pool of the test's own, like Swift's on this machine: 2 threads that
/// never start another when one blocks (`FixedPool`). The global pool is shared with other
/// suites' synchronous tests, which block its threads in their own waits; on it, the
/// releasing task could be late for reasons of theirs.
@Suite(.holdsHighPriorityKworkers, .timeLimit(.minutes(2)))
struct NoParkedPoolThreadTests {
    /// The pool's threads, and so the copies of each kind of wait.
    static let copies = 2

    /// A handler whose threaded part reads a Devres of its device with `access(bound)` and
    /// is held inside that access.
    final class Accessor: ThreadedHandler {
        let gate: Gate
        let target = Box<Devres<Int>?>(nil)
        init(_ gate: Gate) { self.gate = gate }
        func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
            if let target = target.get() { _ = try? target.access(device) { _ in gate.pass() } }
            return .handled
        }
    }

    /// A value whose deinit is held: its Devres' drop stays in flight.
    final class Blocker: Sendable {
        let gate: Gate
        init(_ gate: Gate) { self.gate = gate }
        deinit { gate.pass() }
    }

    /// A work item whose run is held.
    final class HeldWork: WorkItem {
        let work = Work(name: "held-work")
        let gate: Gate
        let runs = AtomicCounter()
        init(_ gate: Gate) { self.gate = gate }
        func run() {
            gate.pass()
            runs.increment()
        }
    }

    /// Where each kind of wait is held.
    final class Gates: Sendable {
        let rcuReader = Gate("RCU reader"), mutexReader = Gate("mutex reader")
        let freeThread = Gate("free_irq's thread"), syncThread = Gate("synchronize_irq's thread")
        let registrationThread = Gate("registration's thread"), holder = Gate("withBound holder")
        let accessor = Gate("access(bound) reader"), drop = Gate("drop in flight")
        let workRun = Gate("managed work's run")
        var all: [Gate] { [rcuReader, mutexReader, freeThread, syncThread, registrationThread, holder, accessor, drop, workRun] }
        func openAll() { for gate in all { gate.open() } }
    }

    /// Everything the test holds, built on a thread (setting up uses blocking calls).
    final class Rig: @unchecked Sendable {
        // SAFETY (@unchecked Sendable): every stored property is written in init, on the
        // thread that builds the rig, before the rig is shared, and never written again.
        let gates: Gates
        var rcuReader: Gate { gates.rcuReader }
        var mutexReader: Gate { gates.mutexReader }
        var freeThread: Gate { gates.freeThread }
        var syncThread: Gate { gates.syncThread }
        var registrationThread: Gate { gates.registrationThread }
        var holder: Gate { gates.holder }
        var accessor: Gate { gates.accessor }
        var drop: Gate { gates.drop }
        var workRun: Gate { gates.workRun }

        let stop = Flag()
        var threads: [KThread] = []
        let counter = Counted.Counter()

        let controller: IRQController
        let stormController: IRQController
        let storms = AtomicCounter()
        var rcuValues: [Revocable<Counted>] = []
        var mutexValues: [Revocable<Counted>] = []
        var freeLines: [(IRQNumber, Cookie)] = []
        var syncLines: [IRQNumber] = []
        var registrations: [ThreadedRegistration<HeldHandler>] = []
        var heldDevices: [Device] = []
        var accessedDevices: [Device] = []
        var droppingDevices: [Device] = []
        /// Devices with managed work, its items (each held in its run) and their queue.
        var managedDevices: [Device] = []
        var managedItems: [HeldWork] = []
        let workQueue: Workqueue
        var readDevice: Device
        var readValues: [Devres<Int>] = []
        /// Registrations and Devres kept alive (dropping one would release it).
        let kept = Box<[AnyObject]>([])

        init(copies: Int, gates: Gates) throws {
            self.gates = gates
            controller = try IRQController(name: "held", cpus: 2)
            stormController = try IRQController(name: "storm", cpus: 1)
            // High priority: the held runs take no worker of the normal pools, where the
            // system queues run (the last CPU's: other suites hold the first's).
            workQueue = try Workqueue(name: "no-park-work", flags: .highPri)

            // Interrupts running: a storm on another controller (quiesce waits only for its own).
            let storm = try stormController.addEventFDLine()
            let storms = self.storms
            try stormController.requestIRQ(storm, name: "storm") { _ in
                storms.increment()
                return .handled
            }
            let stormController = self.stormController, stop = self.stop
            threads.append(try KThread(name: "storm") {
                while !stop.isSet {
                    try? stormController.raise(storm)
                    usleep(20)
                }
            })

            // A device whose Devres the background readers read.
            readDevice = Device(name: "read")
            let values = Box<[Devres<Int>]>([])
            try readDevice.bind(ClosureDriver { bound in
                for i in 0..<8 {
                    let value = try Devres(bound, i)
                    values.update { $0.append(value) }
                }
            })
            readValues = values.get()

            let counter = self.counter
            for copy in 0..<copies {
                rcuValues.append(Revocable(Counted(copy, counter: counter)))
                mutexValues.append(Revocable(Counted(100 + copy, counter: counter), strategy: .mutex))

                // free_irq held by the action's running thread.
                let freeLine = try controller.addSoftwareLine(), cookie = Cookie("free-\(copy)")
                let freeHandler = HeldHandler(freeThread)
                try controller.requestThreadedIRQ(
                    freeLine, name: "free-\(copy)", devID: cookie, handler: freeHandler.primary, thread: freeHandler.thread)
                freeLines.append((freeLine, cookie))

                // synchronize_irq, disable_irq and quiesce held by a running thread.
                let syncLine = try controller.addSoftwareLine()
                let syncHandler = HeldHandler(syncThread)
                try controller.requestThreadedIRQ(
                    syncLine, name: "sync-\(copy)", handler: syncHandler.primary, thread: syncHandler.thread)
                syncLines.append(syncLine)

                // A registration's trySynchronize held by its running thread.
                let registrationLine = try controller.addSoftwareLine()
                let registered = Device(name: "registered-\(copy)", resources: [.irq(registrationLine, on: controller)])
                try registered.bind(ClosureDriver())
                let registrationThread = self.registrationThread
                registrations.append(try registered.withBound { bound in
                    try ThreadedRegistration(try bound.irq(at: 0), name: "registered-\(copy)", handler: HeldHandler(registrationThread))
                })

                // unbind held by a withBound holder.
                let held = Device(name: "held-\(copy)")
                let kept = self.kept
                try held.bind(ClosureDriver { bound in
                    let value = try Devres(bound, copy)
                    kept.update { $0.append(value) }
                })
                heldDevices.append(held)

                // unbind held by an access(bound) reader inside a handler: the Devres it reads
                // is the newest, released first.
                let accessLine = try controller.addSoftwareLine()
                let accessed = Device(name: "accessed-\(copy)", resources: [.irq(accessLine, on: controller)])
                let accessorHandler = Accessor(accessor)
                try accessed.bind(ClosureDriver { bound in
                    let registration = try ThreadedRegistration(try bound.irq(at: 0), name: "accessed-\(copy)", handler: accessorHandler)
                    kept.update { $0.append(registration) }
                })
                accessorHandler.target.set(try accessed.withBound { bound in try Devres(bound, copy) })
                accessedDevices.append(accessed)

                // unbind held by a Devres drop in flight on another thread.
                let dropping = Device(name: "dropping-\(copy)")
                let blockers = Box<[Devres<Blocker>]>([])
                let dropGate = drop
                try dropping.bind(ClosureDriver { bound in
                    let value = try Devres(bound, copy)
                    kept.update { $0.append(value) }
                    let blocker = try Devres(bound, Blocker(dropGate))
                    blockers.update { $0.append(blocker) }
                })
                droppingDevices.append(dropping)
                threads.append(try KThread(name: "dropper-\(copy)") { blockers.set([]) })  // the last reference

                // unbind held by its managed work's run (its disableWorkSync); the item's own
                // waits and its queue's flush held by the same run.
                let managed = Device(name: "managed-\(copy)")
                let item = HeldWork(workRun)
                try managed.bind(ClosureDriver { bound in try bound.device.addWork(bound, item) })
                managedDevices.append(managed)
                managedItems.append(item)
                guard workQueue.queueOn(cpu: Workqueue.cpuCount - 1, item) == .queued else {
                    throw SetupFailed(description: "managed work not queued")
                }

                try controller.raise(freeLine)
                try controller.raise(syncLine)
                try controller.raise(registrationLine)
                try controller.raise(accessLine)

                // A reader holding the mutex Revocable's lock; a withBound holder.
                let mutexValue = mutexValues[copy], mutexReader = self.mutexReader, holder = self.holder
                threads.append(try KThread(name: "mutex-reader-\(copy)") { _ = mutexValue.tryAccess { _ in mutexReader.pass() } })
                threads.append(try KThread(name: "holder-\(copy)") { _ = try? held.withBound { _ in holder.pass() } })
            }

            // A reader inside its read-side section holds every grace period off.
            let rcuReader = self.rcuReader
            threads.append(try KThread(name: "rcu-reader") { RCU.read { rcuReader.pass() } })

            // Readers running throughout: the Revocables being revoked, and a device's Devres.
            let rcuValues = self.rcuValues, readValues = self.readValues
            for i in 0..<2 {
                threads.append(try KThread(name: "reader-\(i)") {
                    var sum = 0
                    while !stop.isSet {
                        for value in rcuValues { sum &+= value.tryAccess { $0.id } ?? 0 }
                        for value in readValues { sum &+= value.tryAccess { $0 } ?? 0 }
                    }
                    if sum == -1 { print(sum) }
                })
            }

            let everyoneHeld = [
                rcuReader.waitUntilReached(1), mutexReader.waitUntilReached(copies), freeThread.waitUntilReached(copies),
                syncThread.waitUntilReached(copies), registrationThread.waitUntilReached(copies),
                holder.waitUntilReached(copies), accessor.waitUntilReached(copies), drop.waitUntilReached(copies),
                workRun.waitUntilReached(copies),
            ]
            guard everyoneHeld.allSatisfy({ $0 }) else {
                let missing = zip(gates.all, everyoneHeld).filter { !$0.1 }.map { "\($0.0.name) (\($0.0.arrived) of \(copies))" }
                gates.openAll()
                throw SetupFailed(description: "not held: \(missing)")
            }
        }
    }

    struct SetupFailed: Error, CustomStringConvertible {
        let description: String
    }

    /// What each awaiting task reports.
    enum Outcome: Sendable, Equatable {
        case synchronized
        case revoked(Bool)
        case freed(String)
        case done
        case flushed(Bool)
        case cancelled(Bool)
        case unbound(released: Int)
        case failed(String)
    }

    @Test func noWaitOfAnAsyncCallParksAThreadOfTheConcurrencyPool() async throws {
        let copies = Self.copies
        let pool = try FixedPool(width: copies, name: "no-park")
        // The watchdog, before anything is held: if the releasing task has not run by the
        // deadline, a wait parked the pool. Open the gates so that everything finishes, and
        // say so. (The RCU reader's section holds every grace period of the process off, so
        // nothing that opens the gates may wait for the global pool, where other suites'
        // synchronous tests block in grace periods meanwhile: the whole test runs on its
        // own pool.)
        let gates = Gates()
        let finished = Flag(), timedOut = Flag()
        let deadline = Deadline.after(.seconds(Scale.isTSan ? 60 : 20))
        let watchdog = try KThread(name: "watchdog") {
            while !finished.isSet && !deadline.hasPassed { usleep(1_000) }
            if !finished.isSet {
                timedOut.set()
                gates.openAll()
            }
        }
        try await withTaskExecutorPreference(pool) {
            try await Self.run(copies: copies, pool: pool, gates: gates, timedOut: timedOut)
        }
        finished.set()
        try await watchdog.join()
        try await BlockingPool.shared.run { try pool.stop() }
    }

    static func run(copies: Int, pool: FixedPool, gates: Gates, timedOut: Flag) async throws {
        let rig = try #require(try Threads.onThread(timeout: .seconds(30)) { try Rig(copies: copies, gates: gates) })

        let started = AtomicCounter(), completed = AtomicCounter(), offPool = AtomicCounter()
        let completedBeforeRelease = Box<Int>(-1)
        var operations: [@Sendable () async -> Outcome] = []
        for copy in 0..<copies {
            let rcuValue = rig.rcuValues[copy], mutexValue = rig.mutexValues[copy]
            let (freeLine, cookie) = rig.freeLines[copy], syncLine = rig.syncLines[copy]
            let registration = rig.registrations[copy], controller = rig.controller
            let held = rig.heldDevices[copy], accessed = rig.accessedDevices[copy], dropping = rig.droppingDevices[copy]
            let managed = rig.managedDevices[copy], item = rig.managedItems[copy], workQueue = rig.workQueue
            operations += [
                // The grace period, held off by the reader in its section.
                { do { try await RCU.synchronize(); return .synchronized } catch { return .failed("\(error)") } },
                // Two revokes of one RCU Revocable: the winner's grace period and drop, the
                // loser's wait for that drop.
                { do { return .revoked(try await rcuValue.revoke()) } catch { return .failed("\(error)") } },
                { do { return .revoked(try await rcuValue.revoke()) } catch { return .failed("\(error)") } },
                // The mutex strategy's lock, held by a reader.
                { do { return .revoked(try await mutexValue.revoke()) } catch { return .failed("\(error)") } },
                // free_irq: the running handler's thread, then its stop.
                { do { return .freed(try await controller.freeIRQ(freeLine, devID: cookie)) } catch { return .failed("\(error)") } },
                // synchronize_irq, disable_irq, quiesce: the line's running thread.
                { do { try await controller.synchronizeIRQ(syncLine); return .done } catch { return .failed("\(error)") } },
                { do { try await controller.disableIRQ(syncLine); return .done } catch { return .failed("\(error)") } },
                { do { try await controller.quiesce(timeout: nil); return .done } catch { return .failed("\(error)") } },
                // A registration's trySynchronize: its running thread.
                { do { try await registration.trySynchronize(); return .done } catch { return .failed("\(error)") } },
                // unbind: a withBound holder; an access(bound) reader; a drop in flight.
                { do { return .unbound(released: try await held.unbind().released) } catch { return .failed("\(error)") } },
                { do { return .unbound(released: try await accessed.unbind().released) } catch { return .failed("\(error)") } },
                { do { return .unbound(released: try await dropping.unbind().released) } catch { return .failed("\(error)") } },
                // Managed work held in its run: unbind's disableWorkSync (on the runtime thread
                // the async unbind runs on); the item's own waits; its queue's flush.
                { do { return .unbound(released: try await managed.unbind().released) } catch { return .failed("\(error)") } },
                { do { return .flushed(try await item.flushWork()) } catch { return .failed("\(error)") } },
                { do { return .cancelled(try await item.cancelWorkSync()) } catch { return .failed("\(error)") } },
                { do { return .cancelled(try await item.disableWorkSync()) } catch { return .failed("\(error)") } },
                { do { try await workQueue.flushQueue(); return .done } catch { return .failed("\(error)") } },
            ]
        }
        let operationCount = operations.count
        #expect(operationCount > pool.width, "more awaiting tasks than pool threads")

        let outcomes = await withTaskGroup(of: Outcome?.self) { group in
            for operation in operations {
                group.addTask {
                    if !KThread.currentName.hasPrefix("no-park/") { offPool.increment() }
                    started.increment()
                    let outcome = await operation()
                    completed.increment()
                    return outcome
                }
            }
            // Queued behind every awaiting task: runs only if they left the pool free.
            group.addTask {
                while started.value < operationCount { try? await Task.sleep(for: .milliseconds(1)) }
                try? await Task.sleep(for: .milliseconds(100))  // let every wait begin
                completedBeforeRelease.set(completed.value)
                gates.openAll()
                return nil
            }
            var outcomes: [Outcome] = []
            for await outcome in group { if let outcome { outcomes.append(outcome) } }
            return outcomes
        }

        #expect(!timedOut.isSet, "a wait parked a thread of the concurrency pool: the releasing task ran only after the watchdog opened the gates")
        #expect(completedBeforeRelease.get() == 0, "every wait held until the releasing task ran")
        #expect(offPool.value == 0, "every awaiting task ran on the test's pool")
        #expect(outcomes.count == operationCount)
        #expect(!outcomes.contains { if case .failed = $0 { true } else { false } }, "\(outcomes)")
        #expect(outcomes.filter { $0 == .revoked(true) }.count == 2 * copies, "one winner per Revocable")
        #expect(outcomes.filter { $0 == .revoked(false) }.count == copies, "one loser per RCU Revocable")
        #expect(outcomes.filter { $0 == .synchronized }.count == copies)
        #expect(outcomes.filter { if case .freed = $0 { true } else { false } }.count == copies)
        #expect(outcomes.filter { $0 == .unbound(released: 1) }.count == 3 * copies, "held and dropping: their Devres<Int>; managed: its work")
        #expect(outcomes.filter { $0 == .unbound(released: 2) }.count == copies, "accessed: its registration and Devres")
        #expect(rig.counter.droppedCount == 2 * copies, "every revoked value dropped once")
        #expect(rig.storms.value > 0, "interrupts ran meanwhile")
        #expect(outcomes.filter { $0 == .flushed(true) }.count == copies, "each flush waited for its item's run")
        #expect(outcomes.filter { $0 == .cancelled(false) }.count == 2 * copies, "running, not pending")
        #expect(rig.managedItems.allSatisfy { $0.runs.value == 1 && !$0.work.isRunning && !$0.work.isPending })
        #expect(rig.managedItems.allSatisfy { $0.work.isDisabled && rig.workQueue.enqueue($0) == .disabled }, "unbind's managed cancel keeps it off")
        #expect(rig.managedDevices.allSatisfy { !$0.isBound })

        // Tear down.
        rig.stop.set()
        for thread in rig.threads { try await thread.join() }
        for line in rig.syncLines {
            try rig.controller.enableIRQ(line)
            _ = try await rig.controller.freeIRQ(line)
        }
        for registration in rig.registrations { _ = try await registration.device.unbind() }
        _ = try await rig.readDevice.unbind()
        try await rig.workQueue.destroyQueue()
        await rig.controller.shutdown()
        await rig.stormController.shutdown()
    }
}
