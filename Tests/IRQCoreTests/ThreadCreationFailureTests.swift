import Foundation
import IRQEmu
import SystemPackage
import Testing

/// A thread that cannot be created fails the call that needed it with the kernel's error,
/// leaving nothing requested or running (it trapped on a `precondition` before). The
/// failure is real: a child process lowers its RLIMIT_AS until `pthread_create` cannot map a
/// stack (RLIMIT_NPROC is not enforced for root, which the tests run as here).
@Suite(.timeLimit(.minutes(1)))
struct ThreadCreationFailureTests {
    @Test func aRequestWhoseThreadCannotStartFailsAndLeavesNothingRequested() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            requestUnderAnAddressSpaceLimit()
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("genirq: Failed to create thread irq/1-starved"), "\(stderr)")
    }

    @Test func aControllerWhoseCPUCannotStartFailsAndLeavesNothingRunning() async {
        await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            controllerUnderAnAddressSpaceLimit()
        }
    }
}

/// Caps the address space at what is mapped now plus `headroom` bytes: enough for the
/// allocations of a call, not for an 8 MiB thread stack.
private func limitAddressSpace(headroom: Int = 4 << 20) -> rlimit {
    var old = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &old)
    let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "0"
    let pages = Int(statm.split(separator: " ").first ?? "0") ?? 0
    var limit = rlimit(rlim_cur: rlim_t(pages * Int(getpagesize()) + headroom), rlim_max: old.rlim_max)
    setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit)
    return old
}

private func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(1)
}

/// Exit-test body: the request fails with `outOfResources` (pthread's EAGAIN), the line
/// has no action, its log says why, and once the limit is lifted the same request works.
private func requestUnderAnAddressSpaceLimit() {
    let log = KernelLog(name: "starved", echo: true)
    guard let controller = try? IRQController(log: log), let irq = try? controller.addSoftwareLine() else { fail("setup") }
    var old = limitAddressSpace()
    let error = caughtIRQError { () throws(IRQError) in
        try controller.requestThreadedIRQ(irq, flags: .oneShot, name: "starved", handler: nil) { _ in .handled }
    }
    setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &old)
    guard case .outOfResources(let failedIRQ?, _, let errno)? = error else {
        fail("expected outOfResources, got \(String(describing: error))")
    }
    guard failedIRQ == irq, errno == .resourceTemporarilyUnavailable || errno == .noMemory else {
        fail("wrong irq or errno: \(failedIRQ) \(errno)")
    }
    guard (try? controller.stats(irq).actions) == [] else { fail("an action was left on the line") }
    do {
        try controller.requestThreadedIRQ(irq, flags: .oneShot, name: "fed", handler: nil) { _ in .handled }
        try controller.freeIRQ(irq)
    } catch { fail("the line was left unusable: \(error)") }
    controller.shutdown()
    exit(0)
}

/// Exit-test body: a controller whose second CPU cannot start throws, and its first CPU was
/// stopped (no `irqemu/cpu0` thread is left in /proc/self/task).
private func controllerUnderAnAddressSpaceLimit() {
    var old = limitAddressSpace(headroom: 12 << 20)  // one stack fits, a second does not
    let error = caughtIRQError { () throws(IRQError) in _ = try IRQController(name: "starved", cpus: 4) }
    setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &old)
    guard case .outOfResources(nil, let what, _)? = error else {
        fail("expected outOfResources for a dispatcher, got \(String(describing: error))")
    }
    guard what.hasPrefix("dispatcher thread starved/cpu") else { fail("wrong thread: \(what)") }
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    let names = tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
    if names.contains(where: { $0.hasPrefix("starved/cpu") }) { fail("a CPU thread was left running: \(names)") }
    exit(0)
}

private func caughtIRQError(_ body: () throws(IRQError) -> Void) -> IRQError? {
    do throws(IRQError) {
        try body()
        return nil
    } catch { return error }
}
