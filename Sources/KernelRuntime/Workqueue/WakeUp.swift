/// An idle worker taken off its pool's idle stack under the lock, to be woken once the lock
/// is dropped (or nobody to wake). Unretained: waking it neither retains nor releases.
@safe
struct WakeUp {
    // SAFETY: workers are never freed.
    private let worker: Unmanaged<Worker>?

    init(_ worker: Unmanaged<Worker>?) { unsafe self.worker = worker }

    /// Nobody to wake.
    static var none: WakeUp { unsafe WakeUp(nil) }

    /// Whether there is a worker to wake.
    var isNeeded: Bool { unsafe worker != nil }

    /// Wakes it (`pthread_cond_signal`). Lock not held.
    @inline(__always)
    func signal() { unsafe worker?._withUnsafeGuaranteedRef { $0.condition.signal() } }
}
