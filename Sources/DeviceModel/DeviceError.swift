import KernelRuntime
import SystemPackage
import RCU

/// Why a device-model operation failed. Each case names the device and the kernel errno it
/// stands for; the operation changed nothing.
public enum DeviceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The device is not bound (or is being unbound), so it has no resources to give out.
    /// Kernel: `ENODEV`.
    case notBound(device: String, operation: String)
    /// `bind` on a device that already has a driver. Kernel: `EBUSY`.
    case alreadyBound(device: String, driver: String)
    /// Proof of boundness for another device. Kernel: `EINVAL`.
    case wrongDevice(expected: String, given: String)
    /// A Devres whose value was already released at unbind was accessed: a lifetime bug
    /// (reported to the device's log as a violation). Kernel: `ENXIO`.
    case released(device: String, resource: String)
    /// The call would wait for itself (unbind inside `withBound` or a driver callback of
    /// the same device). Kernel: `EDEADLK`.
    case wouldDeadlock(device: String, reason: String)
    /// Probing a device whose resource list is not empty (`Resources present before
    /// probing`). Kernel: `EBUSY`.
    case resourcesPresent(device: String)
    /// The driver's probe threw; everything it registered was released.
    case probeFailed(device: String, driver: String, reason: String)
    /// An allocation failed (an injected fault: `Faults.devresFailure`). Kernel: `ENOMEM`.
    case outOfMemory(device: String, operation: String)
    /// A sleeping call in atomic context, refused.
    case atomicContext(AtomicContextViolation)

    /// The errno the kernel would return.
    public var errno: Errno {
        switch self {
        case .notBound: .operationNotSupportedByDevice  // ENODEV
        case .alreadyBound, .resourcesPresent: .resourceBusy
        case .wrongDevice: .invalidArgument
        case .released: .noSuchAddressOrDevice
        case .wouldDeadlock: .deadlock
        case .probeFailed: .noSuchAddressOrDevice
        case .outOfMemory: .noMemory
        case .atomicContext: .invalidArgument
        }
    }

    /// The message, naming the device and ending with the errno, e.g. `bind: device d is already bound to drv (EBUSY)`.
    public var description: String {
        switch self {
        case .notBound(let device, let operation):
            "\(operation): device \(device) is not bound (ENODEV)"
        case .alreadyBound(let device, let driver):
            "bind: device \(device) is already bound to \(driver) (EBUSY)"
        case .wrongDevice(let expected, let given):
            "proof of boundness is for device \(given), not \(expected) (EINVAL)"
        case .released(let device, let resource):
            "\(resource) of device \(device) was already released (ENXIO)"
        case .wouldDeadlock(let device, let reason):
            "device \(device): \(reason) (EDEADLK)"
        case .resourcesPresent(let device):
            "device \(device): Resources present before probing (EBUSY)"
        case .outOfMemory(let device, let operation):
            "\(operation): device \(device): out of memory (ENOMEM)"
        case .probeFailed(let device, let driver, let reason):
            "probe of \(device) by \(driver) failed: \(reason)"
        case .atomicContext(let violation):
            violation.report.headline
        }
    }
}
