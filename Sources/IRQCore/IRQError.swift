import DeviceModel
import KernelRuntime
import SystemPackage

/// Why an IRQ operation failed. Each case names the IRQ (and the flags or device involved)
/// and the kernel errno it stands for (`errno`). A failed call changed nothing.
public enum IRQError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Bad IRQ number, flag combination, handler set or configuration; `irq` is nil for a
    /// setting that is not about one line. Kernel: `EINVAL`.
    case invalidArgument(irq: IRQNumber?, reason: String)
    /// The line is taken and the flags do not allow sharing (`genirq: Flags mismatch`), or a
    /// signal or descriptor another owner holds. Kernel: `EBUSY`.
    case busy(irq: IRQNumber?, reason: String)
    /// `freeIRQ` of an action that is not there (`Trying to free already-free IRQ`).
    /// Kernel: a warning, no errno; here `EINVAL`.
    case alreadyFree(irq: IRQNumber)
    /// `enableIRQ` at depth 0 (`Unbalanced enable for IRQ`). Kernel: a warning; `EINVAL`.
    case unbalancedEnable(irq: IRQNumber)
    /// `enableIRQ` on a line never requested (`enable_irq before setup/request_irq`).
    /// Kernel: a warning; `EINVAL`.
    case notSetUp(irq: IRQNumber)
    /// The registration's device was unbound: its IRQ is freed. Kernel: `ENODEV`.
    case noDevice(device: String)
    /// Proof of boundness, or an IRQ request, for another device. Kernel: `EINVAL`.
    case wrongDevice(expected: String, given: String)
    /// The device has no such IRQ resource (`platform_get_irq`: `IRQ index N not found`).
    /// Kernel: `ENXIO`.
    case noSuchResource(device: String, resource: String)
    /// The call would wait for itself (free_irq, disable_irq or synchronize_irq from the
    /// line's own threaded handler). Kernel: a deadlock. Here: `EDEADLK`, refused.
    case wouldDeadlock(irq: IRQNumber, reason: String)
    /// A sleeping call in atomic context, reported and refused.
    case atomicContext(AtomicContextViolation)
    /// The device model refused (e.g. the device is being unbound).
    case device(DeviceError)
    /// A thread (the action's `irq/N-name`, a dispatcher CPU) could not be created:
    /// `kthread_create`'s failure, with pthread's errno (`EAGAIN`) or an injected `ENOMEM`.
    /// Nothing was requested or started.
    case outOfResources(irq: IRQNumber?, what: String, errno: Errno)
    /// A wait did not finish within its timeout (see `Deadline` for the policy).
    case timedOut(operation: String, after: Duration)
    /// A system call failed underneath.
    case system(call: String, errno: Errno)
    /// The controller was shut down. Kernel: `ENODEV`.
    case shutDown

    /// The errno the kernel would return.
    public var errno: Errno {
        switch self {
        case .invalidArgument, .wrongDevice, .atomicContext, .notSetUp, .unbalancedEnable, .alreadyFree: .invalidArgument
        case .busy: .resourceBusy
        case .noDevice, .shutDown: .operationNotSupportedByDevice  // ENODEV
        case .noSuchResource: .noSuchAddressOrDevice  // ENXIO
        case .wouldDeadlock: .deadlock
        case .device(let e): e.errno
        case .outOfResources(_, _, let e): e
        case .timedOut: .timedOut
        case .system(_, let e): e
        }
    }

    /// The message: `irq N: reason (ERRNO)`, or `reason (ERRNO)` when no line is involved.
    public var description: String {
        switch self {
        case .invalidArgument(let irq?, let reason): "irq \(irq): \(reason) (EINVAL)"
        case .invalidArgument(nil, let reason): "\(reason) (EINVAL)"
        case .busy(let irq?, let reason): "irq \(irq): \(reason) (EBUSY)"
        case .busy(nil, let reason): "\(reason) (EBUSY)"
        case .alreadyFree(let irq): "Trying to free already-free IRQ \(irq)"
        case .unbalancedEnable(let irq): "Unbalanced enable for IRQ \(irq)"
        case .notSetUp(let irq): "enable_irq before setup/request_irq: irq \(irq)"
        case .noDevice(let device): "device \(device) is unbound; its IRQ is freed (ENODEV)"
        case .wrongDevice(let expected, let given): "proof of boundness is for \(given), not \(expected) (EINVAL)"
        case .noSuchResource(let device, let resource): "\(device): \(resource) not found (ENXIO)"
        case .wouldDeadlock(let irq, let reason): "irq \(irq): \(reason) (EDEADLK)"
        case .atomicContext(let v): v.report.headline
        case .device(let e): e.description
        case .outOfResources(let irq?, let what, let e): "irq \(irq): cannot create \(what): \(e)"
        case .outOfResources(nil, let what, let e): "cannot create \(what): \(e)"
        case .timedOut(let operation, let after): "\(operation): timed out after \(after) (ETIMEDOUT)"
        case .system(let call, let e): "\(call): \(e)"
        case .shutDown: "the IRQ controller is shut down (ENODEV)"
        }
    }
}
