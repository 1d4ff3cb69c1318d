import Synchronization

/// Waiting for a condition on an object without a wait queue of its own: the kernel's
/// `wait_var_event` / `wake_up_var`, which hash the object's address into a small shared
/// table of wait queues.
///
/// It costs the object nothing: no field, no allocation. A waker pays one atomic load of
/// its bucket's waiter count (and a lock and a broadcast only when someone waits there);
/// waiters on other objects of the same bucket wake spuriously and check again.
package enum WaitVar {
    private static let bucketCount = 64

    private final class Bucket: Sendable {
        let lock = ConditionLock()
        let waiters = Atomic<Int>(0)
    }

    private static let buckets: [Bucket] = (0..<bucketCount).map { _ in Bucket() }

    private static func bucket(_ object: AnyObject) -> Bucket {
        let address = UInt(bitPattern: ObjectIdentifier(object).hashValue)
        // Objects are 16-byte aligned: mix the higher bits in.
        return buckets[Int((address >> 4 ^ address >> 10) % UInt(bucketCount))]
    }

    /// Sleeps until `condition()` is true. The thread that makes it true calls
    /// `wakeUp(object)` after doing so (with sequentially consistent ordering, or a lock).
    package static func wait(on object: AnyObject, until condition: () -> Bool) {
        _ = wait(on: object, until: .never, condition)
    }

    /// Sleeps until `condition()` is true or `deadline` passes; returns `condition()`'s
    /// last value.
    package static func wait(on object: AnyObject, until deadline: Deadline, _ condition: () -> Bool) -> Bool {
        if condition() { return true }
        let bucket = bucket(object)
        bucket.waiters.add(1, ordering: .sequentiallyConsistent)
        let done = bucket.lock.withLock { bucket.lock.waitLocked(until: deadline, condition) }
        bucket.waiters.subtract(1, ordering: .sequentiallyConsistent)
        return done
    }

    /// Wakes the waiters of `object`'s bucket, if any (`wake_up_var`). Never sleeps.
    package static func wakeUp(_ object: AnyObject) {
        let bucket = bucket(object)
        guard bucket.waiters.load(ordering: .sequentiallyConsistent) > 0 else { return }
        bucket.lock.withLock {}
        bucket.lock.wakeAll()
    }
}
