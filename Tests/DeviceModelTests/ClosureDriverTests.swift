import DeviceModel
import Foundation
import KernelRuntime
import TestSupport
import Testing

/// `ClosureDriver`'s trailing closure is the probe: it runs at bind, never at unbind; a
/// throwing one compiles and fails the bind; with `remove:` as well, both run, in order.
@Suite(.timeLimit(.minutes(1)))
struct ClosureDriverTests {
    /// `ClosureDriver(name: "drv") { bound in … }` runs the closure during bind (with proof
    /// for this device), and not again during unbind. Old code: the trailing closure bound
    /// to `remove` in Swift 6 mode, so nothing ran at bind and it ran at unbind.
    @Test func trailingClosureRunsAsProbe() throws {
        let device = Device(name: "trailing")
        let phase = Box("before")
        let calls = Box<[String]>([])
        let driver = ClosureDriver(name: "drv") { bound in
            calls.update { $0.append("\(phase.get()) \(bound.device.name)") }
        }
        #expect(driver.name == "drv")
        let (afterBind, afterUnbind) = try #require(try Threads.onThread { () throws -> ([String], [String]) in
            phase.set("bind")
            try device.bind(driver)
            let afterBind = calls.get()
            phase.set("unbind")
            try device.unbind()
            return (afterBind, calls.get())
        })
        #expect(afterBind == ["bind trailing"], "the closure ran during bind")
        #expect(afterUnbind == ["bind trailing"], "and not during unbind")
        #expect(!device.isBound)
    }

    /// A throwing trailing closure compiles (it is the throwing `probe`), and its throw
    /// makes the bind fail with `probeFailed` naming the device, driver and error; the
    /// device stays unbound and can be bound again. Old code: a throwing trailing closure
    /// did not compile (it bound to the non-throwing `remove`).
    @Test func throwingTrailingClosureFailsTheBind() throws {
        let device = Device(name: "failing")
        let tries = Box(0)
        let driver = ClosureDriver(name: "drv") { _ in
            tries.update { $0 += 1 }
            throw Failure()
        }
        let (error, boundAfter, rebound) = try #require(Threads.onThread { () -> (DeviceError?, Bool, Bool) in
            let error = caught(DeviceError.self) { try device.bind(driver) }
            let boundAfter = device.isBound
            let rebound = (try? device.bind(ClosureDriver(name: "ok") { _ in })) != nil
            _ = try? device.unbind()
            return (error, boundAfter, rebound)
        })
        #expect(error == .probeFailed(device: "failing", driver: "drv", reason: "probe failed on purpose"))
        #expect(tries.get() == 1, "the probe ran once, at bind")
        #expect(!boundAfter)
        #expect(rebound, "a failed probe left the device unbound and bindable")
    }

    /// `ClosureDriver { probe } remove: { … }` runs the probe at bind and the remove at
    /// unbind, in that order, each once. Old code: did not compile (the first trailing
    /// closure bound to `remove`, leaving `remove:` as an extra trailing closure).
    @Test func probeAndRemoveTrailingClosuresRunInOrder() throws {
        let device = Device(name: "both")
        let calls = Box<[String]>([])
        let driver = ClosureDriver { bound in
            calls.update { $0.append("probe \(bound.device.name)") }
        } remove: { bound in
            calls.update { $0.append("remove \(bound.device.name)") }
        }
        #expect(driver.name == "closure-driver")
        let (afterBind, afterUnbind) = try #require(try Threads.onThread { () throws -> ([String], [String]) in
            try device.bind(driver)
            let afterBind = calls.get()
            try device.unbind()
            return (afterBind, calls.get())
        })
        #expect(afterBind == ["probe both"])
        #expect(afterUnbind == ["probe both", "remove both"])
    }
}
