/// An intrusive FIFO of work items, linked through their `Work` (no allocation to add or
/// remove): a pool's worklist, a queue's inactive items on one pool, a worker's scheduled
/// items. Guarded by the workqueue lock; an item is on at most one list at a time.
///
/// Links are unretained (`Unmanaged`): appending, the queueing path, neither retains nor
/// releases anything.
@safe
final class WorkList: @unchecked Sendable {
    // SAFETY (@unchecked Sendable, and the unretained links): only touched with
    // `WorkqueueCore.lock` held. A listed item is pending, and its queue reference keeps it
    // alive until it leaves the list.
    private var headRef: Unmanaged<Work>?
    private var tailRef: Unmanaged<Work>?
    private(set) var count = 0

    /// What the list is: the listed items are active (counted against their queue's
    /// `maxActive`) unless it is an inactive list.
    let holdsActive: Bool

    init(holdsActive: Bool) { self.holdsActive = holdsActive }

    var isEmpty: Bool { unsafe headRef == nil }

    /// Appends `work`, which is on no list.
    @inline(__always)
    func append(_ work: Work) {
        unsafe work.nextRef = nil
        unsafe work.prevRef = tailRef
        let ref = unsafe Unmanaged.passUnretained(work)
        if let tail = unsafe tailRef {
            unsafe tail._withUnsafeGuaranteedRef { unsafe $0.nextRef = ref }
        } else {
            unsafe headRef = ref
        }
        unsafe tailRef = ref
        unsafe work.listRef = Unmanaged.passUnretained(self)
        count += 1
    }

    /// Unlinks `work`, which is on this list.
    func remove(_ work: Work) {
        let next = unsafe work.nextRef, prev = unsafe work.prevRef
        if let prev = unsafe prev { unsafe prev._withUnsafeGuaranteedRef { unsafe $0.nextRef = next } } else { unsafe headRef = next }
        if let next = unsafe next { unsafe next._withUnsafeGuaranteedRef { unsafe $0.prevRef = prev } } else { unsafe tailRef = prev }
        unsafe work.nextRef = nil
        unsafe work.prevRef = nil
        unsafe work.listRef = nil
        count -= 1
    }

    /// Unlinks and returns the first item.
    func popFirst() -> Work? {
        guard let first = unsafe headRef?.takeUnretainedValue() else { return nil }
        remove(first)
        return first
    }
}
