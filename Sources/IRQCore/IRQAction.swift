import Synchronization

/// One handler registered on a line (the kernel's `struct irqaction`).
///
/// - Invariant: Once published on its line's action list the fields below are immutable
///   except `thread`, which is only cleared by `free_irq` after the action is unlinked and
///   every handler has finished.
final class IRQAction: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): see Invariant.
    let name: String
    let flags: IRQFlags
    let devID: ObjectIdentifier?
    /// Runs in hard-IRQ context.
    let primary: @Sendable (IRQNumber) -> ThreadedIRQReturn
    /// Runs on `thread`, in process context.
    let threadFunction: (@Sendable (IRQNumber) -> IRQReturn)?
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
