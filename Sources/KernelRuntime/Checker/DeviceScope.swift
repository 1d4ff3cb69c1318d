/// The device whose driver callback runs on the calling thread (`ThreadState.deviceScope`),
/// as the layers below the device model see it: told of what only the device can judge.
package protocol DeviceScope: AnyObject {
    /// `work` was cancelled or disabled without waiting for a running instance
    /// (`function`: `cancelWork()`, `disableWork()`, …) by a driver callback of this device.
    func workCancelledWithoutWaiting(_ work: Work, function: String)
}

extension ThreadState {
    /// The device in scope on the calling thread, if any. A thread-local load, and a
    /// conformance lookup when a device is in scope.
    package static var deviceInScope: (any DeviceScope)? {
        guard let raw = unsafe deviceScope else { return nil }
        // SAFETY: the device model stores an unretained device, alive while it is stored.
        return unsafe Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as? any DeviceScope
    }
}
