import KernelRuntime
import Synchronization

/// The IRQ handler a thread is running: which Registration's, of which device, and where
/// that Registration sits on its device's devres list.
///
/// Created by the IRQ core with each Registration (before its IRQ is requested) and set on
/// the thread around every call of its handlers (`HandlerContext.with`), hard and threaded.
/// Checks of ordering between a handler's Registration and other device resources read it:
/// managed work queued from a handler (`Device.addWork`), and others to come (a Devres a
/// handler reads that was registered after its Registration).
package final class HandlerMark: Sendable {
    /// The Registration's device.
    package let device: Device
    /// The action's name (`request_irq`'s `name`).
    package let name: String
    /// The Registration's devres sequence number on `device` (`DevresNode.sequence`); 0
    /// until its Devres is on the list (an interrupt may arrive before that).
    package let sequence = Atomic<UInt64>(0)

    package init(device: Device, name: String) {
        self.device = device
        self.name = name
    }
}

/// The handler mark of the calling thread (a pthread-specific pointer: a few nanoseconds to
/// set and restore around a handler call, no allocation).
package enum HandlerContext {
    private static let key = ThreadLocalPointer()

    /// Runs `body` (a handler call) with `mark` as the thread's mark, restoring the previous
    /// one after (handlers of nested lines).
    @inline(__always)
    package static func with<R>(_ mark: HandlerMark, _ body: () -> R) -> R {
        let previous = unsafe key.value
        // SAFETY: `mark` is alive for the whole call (the caller's closure holds it), and the
        // pointer is removed before `with` returns.
        unsafe key.value = Unmanaged.passUnretained(mark).toOpaque()
        defer { unsafe key.value = previous }
        return body()
    }

    /// The mark of the handler running on the calling thread, if any.
    package static var current: HandlerMark? {
        guard let raw = unsafe key.value else { return nil }
        // SAFETY: set by `with` for the duration of a call that keeps the mark alive.
        return unsafe Unmanaged<HandlerMark>.fromOpaque(raw).takeUnretainedValue()
    }
}
