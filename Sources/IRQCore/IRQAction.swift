import Synchronization

/// One handler registered on a line (the kernel's `struct irqaction`).
///
/// - Invariant: Once published on its line's action list the fields below are immutable
///   except `thread`, `primary` and `threadFunction`, which only `free_irq` changes, after
///   the action is unlinked and every handler and thread of the line has finished (the
///   line lock orders that after the last run).
final class IRQAction: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): see Invariant.
    let name: String
    let flags: IRQFlags
    let devID: ObjectIdentifier?
    /// Runs in hard-IRQ context.
    private(set) var primary: @Sendable (IRQNumber) -> ThreadedIRQReturn
    /// Runs on `thread`, in process context.
    private(set) var threadFunction: (@Sendable (IRQNumber) -> IRQReturn)?
    /// The ONESHOT bit of this action on its line (0 if not ONESHOT).
    let threadMask: UInt64
    /// Whether `primary` is the default primary (request_threaded_irq with handler=NULL).
    let isDefaultPrimary: Bool
    var thread: IRQThread?
    let warnedWakeWithoutThread = Atomic<Bool>(false)

    init(
        name: String, flags: IRQFlags, devID: ObjectIdentifier?,
        primary: @escaping @Sendable (IRQNumber) -> ThreadedIRQReturn,
        threadFunction: (@Sendable (IRQNumber) -> IRQReturn)?,
        threadMask: UInt64, isDefaultPrimary: Bool
    ) {
        self.name = name
        self.flags = flags
        self.devID = devID
        self.primary = primary
        self.threadFunction = threadFunction
        self.threadMask = threadMask
        self.isDefaultPrimary = isDefaultPrimary
    }

    /// Takes the handlers (and what they captured) once free_irq has waited for them, so
    /// the handler data is released when free_irq returns rather than when the old action
    /// list's grace period ends. The caller drops the result outside the line lock: a
    /// handler's deinit may call back into the controller.
    func takeHandlers() -> [Any] {
        let taken: [Any] = [primary, threadFunction as Any]
        primary = { _ in .none }
        threadFunction = nil
        return taken
    }
}

/// A line's actions in registration order: an immutable snapshot that the dispatcher
/// reads under RCU and `request_irq`/`free_irq` replace.
@safe
final class ActionList: Sendable {
    let actions: [IRQAction]
    /// The same actions, unretained: the dispatcher walks these without retain/release.
    /// `actions` keeps them alive for as long as the list lives.
    let unretained: [Unmanaged<IRQAction>]

    init(_ actions: [IRQAction]) {
        self.actions = actions
        unsafe unretained = actions.map { unsafe Unmanaged.passUnretained($0) }
    }

    static let empty = ActionList([])
}
