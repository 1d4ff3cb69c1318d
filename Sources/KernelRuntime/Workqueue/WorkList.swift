/// An intrusive FIFO of work items, linked through their `Work` (no allocation to add or
/// remove): a pool's worklist, a queue's inactive items on one pool, a worker's scheduled
/// items. Guarded by the workqueue lock; an item is on at most one list at a time.
@safe
final class WorkList: @unchecked Sendable {
    // SAFETY (@unchecked Sendable, and the unretained ends): only touched with
    // `WorkqueueCore.lock` held. A listed item is pending, and its queue reference keeps it
    // alive until it leaves the list.
    unowned(unsafe) private var _head: Work?
    unowned(unsafe) private var _tail: Work?
    var head: Work? { get { unsafe _head } set { unsafe _head = newValue } }
    var tail: Work? { get { unsafe _tail } set { unsafe _tail = newValue } }
    private(set) var count = 0

    /// What the list is: the listed items are active (counted against their queue's
    /// `maxActive`) unless it is an inactive list.
    let holdsActive: Bool

    init(holdsActive: Bool) { self.holdsActive = holdsActive }

    var isEmpty: Bool { head == nil }

    /// Appends `work`, which is on no list.
    func append(_ work: Work) {
        work.next = nil
        work.prev = tail
        if let tail { tail.next = work } else { head = work }
        tail = work
        work.list = self
        count += 1
    }

    /// Unlinks `work`, which is on this list.
    func remove(_ work: Work) {
        if let prev = work.prev { prev.next = work.next } else { head = work.next }
        if let next = work.next { next.prev = work.prev } else { tail = work.prev }
        work.next = nil
        work.prev = nil
        work.list = nil
        count -= 1
    }

    /// Unlinks and returns the first item.
    func popFirst() -> Work? {
        guard let first = head else { return nil }
        remove(first)
        return first
    }
}
