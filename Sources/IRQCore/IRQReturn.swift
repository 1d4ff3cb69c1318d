/// What a handler returns (the kernel's `irqreturn_t`, Rust's `IrqReturn`).
public enum IRQReturn: UInt32, Sendable, Hashable {
    /// The interrupt was not from this device (`IRQ_NONE`).
    case none = 0
    /// The interrupt was handled (`IRQ_HANDLED`).
    case handled = 1
}

/// What a primary handler with a threaded part returns (Rust's `ThreadedIrqReturn`).
public enum ThreadedIRQReturn: UInt32, Sendable, Hashable {
    /// Not from this device (`IRQ_NONE`).
    case none = 0
    /// Handled entirely in hard-IRQ context (`IRQ_HANDLED`).
    case handled = 1
    /// Wake the action's thread to finish the work in process context (`IRQ_WAKE_THREAD`).
    case wakeThread = 2

    /// A plain handler's result, for a primary that never wakes a thread.
    public init(_ r: IRQReturn) { self = r == .handled ? .handled : .none }
}
