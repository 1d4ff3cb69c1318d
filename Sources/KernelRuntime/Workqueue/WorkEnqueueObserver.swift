/// Sees every enqueue attempt of one work item, before it is decided, on the enqueuing
/// thread (hard-IRQ handlers included): DeviceModel's check that a handler does not queue
/// managed work whose cancel runs before its IRQ is freed.
///
/// Called through an unretained box, outside the workqueue lock.
package protocol WorkEnqueueObserver: AnyObject, Sendable {
    /// Called on every enqueue attempt of `work`. Must not sleep.
    func willEnqueue(_ work: Work)
}

/// The observer, in a box of a known class (so `Work` can hold it by address).
final class WorkEnqueueObserverBox: Sendable {
    let observer: any WorkEnqueueObserver
    init(_ observer: any WorkEnqueueObserver) { self.observer = observer }
}
