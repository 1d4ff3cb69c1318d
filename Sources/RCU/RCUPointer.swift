import KernelRuntime
import Synchronization

/// A pointer that readers follow inside RCU read-side sections and writers replace: the
/// kernel's `__rcu` pointer with `rcu_dereference` / `rcu_assign_pointer`.
///
/// Readers borrow the object for the length of their section, with no retain or release
/// (no shared cache-line write, so readers on several cores scale). A writer publishes a
/// replacement atomically; the old object stays alive until a grace period has passed,
/// then is released (`replace(with:)`, via `call_rcu`, never sleeps) or handed back
/// (`exchange(_:)`, waits for the grace period itself).
///
/// - Invariant: `raw` holds one retain of the published object (or nil). Readers never
///   retain; the retain moves to a grace-period callback, or to the caller of `exchange`,
///   when the object is unpublished.
public final class RCUPointer<Object: AnyObject & Sendable>: Sendable {
    /// The published object's address (an `Unmanaged` holding one retain), or 0.
    @usableFromInline
    let raw: Atomic<UInt>

    /// A pointer publishing `object` (or nothing).
    public init(_ object: Object? = nil) {
        raw = Atomic(Self.retainedBits(object))
    }

    deinit {
        // No reader can reach `self` any more, so no grace period is needed.
        Self.release(raw.exchange(0, ordering: .acquiring))
    }

    @usableFromInline
    static func retainedBits(_ object: Object?) -> UInt {
        guard let object else { return 0 }
        return UInt(bitPattern: unsafe Unmanaged.passRetained(object).toOpaque())
    }

    private static func release(_ bits: UInt) {
        // SAFETY: `bits` came from `retainedBits`, and its retain is released once, here.
        guard let p = unsafe UnsafeRawPointer(bitPattern: bits) else { return }
        unsafe Unmanaged<Object>.fromOpaque(p).release()
    }

    /// Calls `body` with the published object, borrowed for the length of the caller's
    /// read-side section (`rcu_dereference`).
    ///
    /// - Important: Do not let the reference escape `body`: it is only guaranteed alive
    ///   while `guard` is held.
    @inlinable @inline(__always)
    public func dereference<R>(
        under guard: borrowing RCUReadGuard,
        _ body: (Object?) throws -> R
    ) rethrows -> R {
        guard let p = unsafe UnsafeRawPointer(bitPattern: raw.load(ordering: .acquiring)) else { return try body(nil) }
        // SAFETY: `p` was published with a retain that is released only after a grace
        // period that began after it was unpublished; `guard` holds off that grace period.
        return try unsafe Unmanaged<Object>.fromOpaque(p)._withUnsafeGuaranteedRef { try body($0) }
    }

    /// `dereference(under:)` in a read-side section of its own.
    @inlinable @inline(__always)
    public func read<R>(_ body: (Object?) throws -> R) rethrows -> R {
        let held = RCUReadGuard(unchecked: ())
        return try dereference(under: held, body)
    }

    /// Publishes `new` and releases the old object after a grace period, on liburcu's
    /// `call_rcu` thread. Never sleeps: callable from atomic context.
    public func replace(with new: Object?) {
        let old = raw.exchange(Self.retainedBits(new), ordering: .acquiringAndReleasing)
        guard old != 0 else { return }
        RCU.callAfterGracePeriod { Self.release(old) }
    }

    /// Publishes `new` and returns the old object at once, without waiting.
    ///
    /// - Safety: Readers may still be borrowing the old object inside read-side sections
    ///   that began before the call. Keep it alive until a grace period has passed (for
    ///   instance across a `Revocable.revoke()` of it, which waits one) before dropping it.
    @unsafe
    public func exchangeWithoutWaiting(_ new: Object?) -> Object? {
        let old = raw.exchange(Self.retainedBits(new), ordering: .acquiringAndReleasing)
        guard let p = unsafe UnsafeRawPointer(bitPattern: old) else { return nil }
        return unsafe Unmanaged<Object>.fromOpaque(p).takeRetainedValue()
    }

    /// Publishes `new`, waits for a grace period, and returns the old object, which no
    /// reader can reach any more.
    ///
    /// - Precondition: Process context (checked).
    @available(*, noasync, message: "blocks the thread for an RCU grace period")
    public func exchange(_ new: Object?, file: StaticString = #fileID, line: UInt = #line) throws(AtomicContextViolation) -> Object? {
        try AtomicContext.mightSleep("RCUPointer.exchange(_:)", file: file, line: line)
        let old = raw.exchange(Self.retainedBits(new), ordering: .acquiringAndReleasing)
        guard let p = unsafe UnsafeRawPointer(bitPattern: old) else { return nil }
        RCU.synchronizeUnchecked()
        // SAFETY: the retain taken when `old` was published moves to the caller.
        return unsafe Unmanaged<Object>.fromOpaque(p).takeRetainedValue()
    }
}
