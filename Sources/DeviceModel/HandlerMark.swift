import KernelRuntime
import Synchronization

/// The teardown-order check: the mark of an IRQ handler (primary or threaded) on the thread
/// that runs it, with where the handler's registration sits on its device's resource list.
///
/// `Devres.access(_:)` from a handler reads a value with no lock, on the proof that the
/// device is bound. A value the device registered after the handler's own registration is
/// released first at unbind (newest first), before the IRQ's free_irq stops the handler: a
/// handler running then reads released data. The bug shows only if an interrupt arrives in
/// that window, microseconds wide; this check reports it on the first such access, whatever
/// the timing, once per (registration site, Devres site) until `Lockdep.reset`. `tryAccess`
/// is not reported: it sees the revocation. It runs whether or not the lock validator does.
///
/// - Complexity: Running a handler under the mark costs two thread-local stores; an
///   `access(_:)` outside a handler one thread-local load.
package final class HandlerMark: Sendable {
    package let device: Device
    let irq: Int
    let name: String
    let site: String
    /// The registration's place on the device's list; no access is reported until it is
    /// known (an interrupt may arrive before the registration's Devres exists).
    private let sequence = Atomic<UInt32>(.max)
    /// The last node reported from here: a storm of the same access skips the lookup.
    private let lastReported = Atomic<UInt>(0)

    package init(device: Device, irq: Int, name: String, file: StaticString, line: UInt) {
        self.device = device
        self.irq = irq
        self.name = name
        site = "\(file):\(line)"
    }

    /// The registration's place on the device's list (`UInt32.max` until it is known).
    package var registeredSequence: UInt32 { sequence.load(ordering: .acquiring) }

    /// Records the registration's own place on the list.
    package func registered(at sequence: UInt32) { self.sequence.store(sequence, ordering: .releasing) }

    /// Runs `body` (the handler) with the mark on the calling thread.
    @inline(__always)
    package func run<R>(_ body: () -> R) -> R {
        let previous = unsafe ThreadState.runningHandler
        unsafe ThreadState.runningHandler = Unmanaged.passUnretained(self).toOpaque()
        defer { unsafe ThreadState.runningHandler = previous }
        return body()
    }

    /// The mark of the handler running on the calling thread, if any.
    @inline(__always)
    package static var current: HandlerMark? {
        guard let raw = unsafe ThreadState.runningHandler else { return nil }
        // SAFETY: `run` stores an unretained reference to `self`, alive while `run` runs,
        // and restores the previous value before it returns.
        return unsafe Unmanaged<HandlerMark>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Reports an access of `node` (of this handler's device) if it was registered after
    /// the handler's registration.
    func checkAccess(of node: DevresNode, file: StaticString, line: UInt) {
        guard node.sequence.load(ordering: .acquiring) > sequence.load(ordering: .acquiring) else { return }
        let address = UInt(bitPattern: ObjectIdentifier(node))
        guard lastReported.exchange(address, ordering: .relaxed) != address else { return }
        guard Lockdep.isFirstReport(of: "teardown order: \(site) \(node.site)") else { return }
        let what = node.resourceName
        AtomicContext.warn(
            .teardownOrder,
            [
                "WARNING: irqemu: handler of irq \(irq) (\(name)) accesses \(what) registered after its IRQ",
                "\(what) of device \(device.name) was registered at \(node.site), after the IRQ was requested at \(site)",
                "unbind releases resources newest first: it drops this value before free_irq(\(irq)) stops the handler, which may still run and read it",
                "register the data before requesting the IRQ, or read it with tryAccess",
            ],
            function: "Devres.access(_:)", log: device.log, file: "\(file)", line: line)
    }
}
