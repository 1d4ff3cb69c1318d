import DeviceModel
import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(1)))
struct DeviceCheckerTests {
    /// unbind, bind and Devres creation in atomic context: reported on the device's log,
    /// refused, device unchanged; no hang.
    @Test func sleepingDeviceCallsInAtomicContextAreRefused() throws {
        let device = Device(name: "atomic")
        let handles = Handles<Int>()
        let result = try Threads.onThread { () -> [DeviceError?] in
            try device.bind(ClosureDriver(probe: { bound in handles.append(try Devres(bound, 1)) }))
            var out: [DeviceError?] = []
            RCU.read {
                out.append(caught(DeviceError.self) { try device.unbind() })
            }
            SpinLock(()).withLock { _ in
                out.append(caught(DeviceError.self) { try device.unbind() })
                out.append(caught(DeviceError.self) { try device.withBound { bound in _ = try Devres(bound, 2) } })
            }
            return out
        }
        #expect(result?.count == 3)
        #expect(result?.allSatisfy { if case .atomicContext = $0 { true } else { false } } == true)
        #expect(device.isBound)
        #expect(device.resourceCount == 1)
        #expect(handles.all[0].tryAccess { $0 } == 1)
        let reports = device.log.reports(.sleepInAtomic)
        #expect(reports.count == 3)
        #expect(reports.allSatisfy { $0.headline.hasPrefix("BUG: sleeping function called from invalid context at DeviceModelTests/CheckerDeviceTests.swift:") })
        #expect(reports.map(\.function) == ["Device.unbind(mode:)", "Device.unbind(mode:)", "Devres.init"])
        _ = try Threads.onThread { try device.unbind() }
    }

    /// A mutex-strategy Devres read in atomic context is refused and reported to its
    /// device's log, from any thread, and from driver code inside `withBound` a revoke of
    /// the driver's own Revocable is too: reports follow the device, not the thread.
    @Test func reportsFromDeviceResourcesGoToTheDevicesLog() throws {
        let device = Device(name: "scoped")
        let handles = Handles<Int>()
        let own = Revocable(7, strategy: .mutex)
        let threadLog = KernelLog(name: "thread")
        let result = try Threads.onThread { () -> [Int?] in
            try device.bind(ClosureDriver(probe: { bound in handles.append(try Devres(bound, 5, strategy: .mutex)) }))
            let devres = handles.all[0]
            return KernelLog.withCurrent(threadLog) {
                let spin = SpinLock(())
                let refused = spin.withLock { _ in devres.tryAccess { $0 } }
                let held = try! RCUReadGuard()
                let refusedUnder = devres.tryAccess(under: held) { $0 }
                _ = consume held
                let revokeRefused = try? device.withBound { _ in spin.withLock { _ in (try? own.revoke()) == nil } }
                return [refused, refusedUnder, devres.tryAccess { $0 }, revokeRefused == true ? 0 : 1]
            }
        }
        #expect(result == [nil, nil, 5, 0], "both reads refused, then read; the revoke refused")
        #expect(device.log.reports(.sleepInAtomic).count == 3)
        #expect(threadLog.reports.isEmpty, "nothing went to the thread's log")
        #expect(!own.isRevoked)
        _ = try Threads.onThread { try device.unbind() }
    }

    /// The last reference to a Devres dropped inside a read-side section: reported, and the
    /// drop is done later by the reaper (an item of its ordered workqueue, on a kworker),
    /// not in place.
    @Test func devresDroppedInAReadSectionIsDeferredToTheReaper() throws {
        let dropThread = Box<String>("")
        let counter = Counted.Counter()
        let device = Device(name: "deferred")
        let handles = Handles<Counted>()
        let droppedInPlace = try Threads.onThread { () -> Bool in
            try device.bind(ClosureDriver(probe: { bound in
                handles.append(try Devres(bound, Counted(counter: counter) { _ in
                    dropThread.set(Workqueue.current?.name ?? KThread.currentName)
                }))
            }))
            return RCU.read { () -> Bool in
                handles.removeAll()
                return counter.droppedCount == 1 && dropThread.get() != Reaper.queueName
            }
        }
        #expect(droppedInPlace == false)
        #expect(Threads.onThread { (try? Reaper.shared.flush(timeout: .seconds(10))) != nil } == true)
        #expect(counter.droppedCount == 1)
        #expect(dropThread.get() == Reaper.queueName)
        #expect(device.resourceCount == 0)
        let report = device.log.reports(.sleepInAtomic).first
        #expect(report?.function == "Devres<Counted>.deinit")
        #expect(report?.lines.contains("RCU nest depth: 1, expected: 0") == true)
    }
}
