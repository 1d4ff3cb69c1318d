import DeviceModel
import KernelRuntime

extension Registration {
    /// `try_synchronize`, suspended: `synchronize_irq` if the IRQ is still requested. The
    /// IRQ is read on the calling task; the wait for its handlers runs on a runtime worker
    /// thread, which resumes the task (no thread of the concurrency pool waits). A cancelled
    /// task's call still waits and returns normally.
    ///
    /// There is no async `synchronize(_:)`: its proof of boundness (`Device.Bound`) exists
    /// only inside synchronous callbacks, where nothing can be awaited.
    ///
    /// Returns `Void`, once no handler of the line runs.
    ///
    /// - Throws: `noDevice` (ENODEV) once the device was unbound.
    public func trySynchronize(file: StaticString = #fileID, line: UInt = #line) async throws(IRQError) {
        try await requested.trySynchronize(file: file, line: line)
    }
}

extension ThreadedRegistration {
    /// See `Registration.trySynchronize()`'s async overload: the line's threads are waited
    /// for too.
    ///
    /// Returns `Void`, once no handler or thread of the line runs.
    ///
    /// - Throws: `noDevice` (ENODEV) once the device was unbound.
    public func trySynchronize(file: StaticString = #fileID, line: UInt = #line) async throws(IRQError) {
        try await requested.trySynchronize(file: file, line: line)
    }
}

extension RegisteredIRQ {
    func trySynchronize(file: StaticString, line: UInt) async throws(IRQError) {
        // Read the IRQ under the read-side section (closure form) on the task; a mutex
        // Devres' lock is only ever held for a moment (its revoke moves the value out).
        guard let registration = devres.tryAccess(file: file, line: line, { $0 }) else {
            throw .noDevice(device: device.name)
        }
        try registration.core.checkMaySleep(registration.descriptor, "synchronize_irq", file: "\(file)", line: line)
        let descriptor = registration.descriptor
        await BlockingPool.shared.run { _ = descriptor.waitForHandlers() }
    }
}
