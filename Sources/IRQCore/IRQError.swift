import DeviceModel
import Glibc
import KernelRuntime
import RCU

/// Why an IRQ operation failed. Each case names the IRQ (and the flags or device involved)
/// and the kernel errno it stands for. A failed call changed nothing.
public enum IRQError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Bad IRQ number, flag combination or handler set. Kernel: `EINVAL`.
    case invalidArgument(irq: IRQNumber, reason: String)
    /// The line is taken and the flags do not allow sharing (`genirq: Flags mismatch`), or a
    /// real-time signal is taken. Kernel: `EBUSY`.
    case busy(irq: IRQNumber, reason: String)
    /// `freeIRQ` of an action that is not there (`Trying to free already-free IRQ`).
    case alreadyFree(irq: IRQNumber)
    /// `enableIRQ` at depth 0 (`Unbalanced enable for IRQ`).
    case unbalancedEnable(irq: IRQNumber)
    /// `enableIRQ` on a line never requested (`enable_irq before setup/request_irq`).
    case notSetUp(irq: IRQNumber)
    /// The registration's device was unbound: its IRQ is freed. Kernel: `ENODEV`.
    case noDevice(device: String)
    /// Proof of boundness for another device. Kernel: `EINVAL`.
    case wrongDevice(expected: String, given: String)
    /// The call would wait for itself (free_irq, disable_irq or synchronize_irq from the
    /// line's own threaded handler). Kernel: a deadlock. Here: `EDEADLK`, refused.
    case wouldDeadlock(irq: IRQNumber, reason: String)
    /// A sleeping call in atomic context, reported and refused.
    case atomicContext(AtomicContextViolation)
    /// The device model refused (e.g. the device is being unbound).
    case device(DeviceError)
    /// A system call failed underneath.
    case system(call: String, errno: Int32)
    /// The controller was shut down.
    case shutDown

    public var errno: Int32 {
        switch self {
        case .invalidArgument, .wrongDevice, .atomicContext, .notSetUp, .unbalancedEnable, .alreadyFree: EINVAL
        case .busy: EBUSY
        case .noDevice: ENODEV
        case .wouldDeadlock: EDEADLK
        case .device(let e): e.errno
        case .system(_, let e): e
        case .shutDown: ENODEV
        }
    }

    public var description: String {
        switch self {
        case .invalidArgument(let irq, let reason): "irq \(irq): \(reason) (EINVAL)"
        case .busy(let irq, let reason): "irq \(irq): \(reason) (EBUSY)"
        case .alreadyFree(let irq): "Trying to free already-free IRQ \(irq)"
        case .unbalancedEnable(let irq): "Unbalanced enable for IRQ \(irq)"
        case .notSetUp(let irq): "enable_irq before setup/request_irq: irq \(irq)"
        case .noDevice(let device): "device \(device) is unbound; its IRQ is freed (ENODEV)"
        case .wrongDevice(let expected, let given): "proof of boundness is for \(given), not \(expected) (EINVAL)"
        case .wouldDeadlock(let irq, let reason): "irq \(irq): \(reason) (EDEADLK)"
        case .atomicContext(let v): v.report.headline
        case .device(let e): e.description
        case .system(let call, let e): "\(call): \(unsafe String(cString: strerror(e))) (errno \(e))"
        case .shutDown: "the IRQ controller is shut down"
        }
    }
}

extension IRQError {
    /// A wait for interrupts or handlers did not finish in time (`quiesce`).
    public static func timedOut(_ operation: String) -> IRQError {
        .system(call: operation, errno: ETIMEDOUT)
    }
}
