import KernelRuntime
import Synchronization

/// One handler registered on a line (the kernel's `struct irqaction`).
///
/// - Invariant: Once published on its line's action list the fields below are immutable
///   except `thread` and the handlers, which only `free_irq` changes, after the action is
///   unlinked, no primary handler of the line runs and the action's own thread has stopped
///   (the line lock orders that after the last run).
@safe
final class IRQAction: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): see Invariant.
    let name: String
    let flags: IRQFlags
    /// The `dev_id` the action is freed by, compared by identity. Held strongly: while the
    /// action lives its address cannot be reused by another object, so a temporary cookie
    /// can never name it by accident.
    let devID: AnyObject?
    /// The ONESHOT bit of this action on its line (0 if not ONESHOT).
    let threadMask: UInt64
    /// Whether the primary handler is the default one (request_threaded_irq with handler=NULL).
    let isDefaultPrimary: Bool
    var thread: IRQThread?
    /// The lock validator's pseudo-lock for the threaded handler: the action's thread holds
    /// it while the handler runs, and free_irq, synchronize_irq and disable_irq wait for
    /// it, so a wait under a lock the threaded handler takes is reported (the kernel's
    /// workqueue maps). Its class is the request's call site. Nil without a thread function.
    let threadMap: LockdepMap?
    let warnedWakeWithoutThread = Atomic<Bool>(false)
    /// Owns the handlers (and what they captured) until free_irq takes them.
    private var owner: Handlers?
    /// `owner`, unretained: calling a handler costs no retain/release (`owner`, or
    /// `Handlers.none` once taken, keeps it alive).
    private var handlers: Unmanaged<Handlers>

    /// The handler pair, immutable: its closures are called from a borrowed reference.
    final class Handlers: Sendable {
        /// Runs in hard-IRQ context.
        let primary: @Sendable (IRQNumber) -> ThreadedIRQReturn
        /// Runs on `thread`, in process context.
        let threadFunction: (@Sendable (IRQNumber) -> IRQReturn)?

        init(primary: @escaping @Sendable (IRQNumber) -> ThreadedIRQReturn, threadFunction: (@Sendable (IRQNumber) -> IRQReturn)?) {
            self.primary = primary
            self.threadFunction = threadFunction
        }

        /// What a freed action runs: nothing.
        static let none = Handlers(primary: { _ in .none }, threadFunction: nil)
    }

    init(
        name: String, flags: IRQFlags, devID: AnyObject?,
        primary: @escaping @Sendable (IRQNumber) -> ThreadedIRQReturn,
        threadFunction: (@Sendable (IRQNumber) -> IRQReturn)?,
        threadMask: UInt64, isDefaultPrimary: Bool, site: String
    ) {
        threadMap = threadFunction == nil ? nil : LockdepMap(key: LockClassKey("(irq_thread)\(site)"))
        self.name = name
        self.flags = flags
        self.devID = devID
        let owner = Handlers(primary: primary, threadFunction: threadFunction)
        self.owner = owner
        unsafe handlers = Unmanaged.passUnretained(owner)
        self.threadMask = threadMask
        self.isDefaultPrimary = isDefaultPrimary
    }

    /// Runs the primary handler. Hard-IRQ context.
    @inline(__always)
    func primary(_ irq: IRQNumber) -> ThreadedIRQReturn {
        // SAFETY: `owner` keeps the box alive until `takeHandlers`, which runs only once no
        // handler of the line runs (see Invariant); after it, the box is the immortal `none`.
        unsafe handlers._withUnsafeGuaranteedRef { $0.primary(irq) }
    }

    /// Whether the action has a threaded handler.
    var hasThreadFunction: Bool {
        unsafe handlers._withUnsafeGuaranteedRef { $0.threadFunction != nil }
    }

    /// Runs the threaded handler (`.none` without one). Process context, on `thread`.
    func threadFunction(_ irq: IRQNumber) -> IRQReturn {
        // SAFETY: as in `primary(_:)`; `free_irq` stops `thread` before taking the handlers.
        unsafe handlers._withUnsafeGuaranteedRef { $0.threadFunction?(irq) ?? .none }
    }

    /// Takes the handlers (and what they captured) once free_irq has waited for them, so
    /// the handler data is released when free_irq returns rather than when the old action
    /// list's grace period ends. The caller drops the result outside the line lock and the
    /// request mutex: a handler's deinit may call back into the controller.
    func takeHandlers() -> Handlers? {
        unsafe handlers = Unmanaged.passUnretained(Handlers.none)
        defer { owner = nil }
        return owner
    }
}

/// A line's actions in registration order: an immutable snapshot that the dispatcher
/// reads under RCU and `request_irq`/`free_irq` replace.
@safe
final class ActionList: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): immutable after init; `unretained` is written only there.
    let actions: [IRQAction]
    /// The same actions, unretained, in memory the list owns: the dispatcher walks them
    /// without retain/release. `actions` keeps them alive for as long as the list lives.
    let unretained: UnsafeMutableBufferPointer<Unmanaged<IRQAction>>

    init(_ actions: [IRQAction]) {
        self.actions = actions
        unsafe unretained = .allocate(capacity: actions.count)
        for (i, action) in actions.enumerated() { unsafe unretained[i] = Unmanaged.passUnretained(action) }
    }

    deinit { unsafe unretained.deallocate() }

    static let empty = ActionList([])
}
