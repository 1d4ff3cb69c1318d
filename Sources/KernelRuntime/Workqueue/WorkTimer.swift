import CSupport
import Glibc
import SystemPackage

/// The delayed-work timer: one thread (`ktimers/0`) that queues each armed item when its
/// time comes (`delayed_work_timer_fn`), in softirq context for the checker.
///
/// Armed items are kept in a pairing heap linked through their `DelayedWork` (intrusive:
/// arming, disarming and re-arming allocate nothing), under the workqueue lock; the thread
/// sleeps on a condition of that lock until the earliest expiry. A timer never fires early:
/// it fires only once the monotonic clock has reached its expiry. How late it fires is
/// recorded in a histogram (`Workqueue.timerLateness`). The thread asks for 1 ns of timer
/// slack (the default 50 µs would add that much to every wake).
@safe
final class WorkTimer: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `heap`, `sequence` and the histogram are only touched with
    // `WorkqueueCore.lock` held; `thread` is written once by `start()`, under the setup lock.
    private var heap = TimerHeap()
    private var sequence: UInt64 = 0
    private let condition = Condition()
    private var thread: KThread?
    let lateness = LatencyHistogram()

    /// Starts the thread.
    func start() throws(Errno) {
        guard thread == nil else { return }
        thread = try KThread(runtime: "ktimers/0") { [self] in
            _ = CSupport_set_timer_slack(1)
            loop()
        }
    }

    /// Arms `work`'s timer to queue it on `queue`'s CPU `cpu` at `expires` (monotonic ns).
    /// Returns whether the thread must be woken (the new timer is the earliest). Lock held.
    func armLocked(_ work: DelayedWork, queue: Workqueue, cpu: Int, at expires: UInt64, now: UInt64) -> Bool {
        sequence &+= 1
        work.expires = expires
        work.timerSequence = sequence
        work.armedAt = now
        work.targetQueue = queue
        work.targetCPU = cpu
        work.armed = true
        queue.armedTimers += 1
        heap.insert(work)
        return heap.root === work
    }

    /// Disarms `work`'s armed timer. Lock held.
    func disarmLocked(_ work: DelayedWork) {
        heap.remove(work)
        work.armed = false
        work.targetQueue!.armedTimers -= 1
    }

    /// Wakes the thread to look at the heap's new root.
    func kick() { condition.signal() }

    private func loop() {
        let core = WorkqueueCore.shared
        // The expiry last delayed by `Faults.timerJitter`: each expiry is delayed once.
        var jittered: (ObjectIdentifier, UInt64)?
        core.lock.lock()
        while true {
            guard let first = heap.root else {
                condition.wait(core.lock)
                continue
            }
            let now = monotonicNanoseconds()
            if first.expires > now {
                _ = condition.wait(core.lock, until: Deadline(nanoseconds: first.expires))
                continue
            }
            // `Faults.timerJitter`: the timer fires late (never early), then the heap is
            // looked at again (the item may have been cancelled meanwhile).
            if _slowPath(FaultInjection.mayInject), jittered.map({ $0 != (ObjectIdentifier(first), first.expires) }) ?? true {
                jittered = (ObjectIdentifier(first), first.expires)
                core.lock.unlock()
                FaultInjection.delay(.timerJitter) { $0.timerJitter }
                core.lock.lock()
                continue
            }
            // Softirq context while it fires, as the kernel's timer callbacks run.
            AtomicContext.enterSoftIRQ()
            let (wake, refused) = fireLocked(first, now: now)
            core.lock.unlock()
            wake.signal()
            if let refused {
                if refused.report { refused.stolen.queue.reportCannotQueue(refused.stolen.work) }
                core.giveBack(refused.stolen)  // softirq: handed to a worker
            }
            AtomicContext.exitSoftIRQ()
            core.lock.lock()
        }
    }

    /// `delayed_work_timer_fn` → `__queue_work`: records the lateness and fires `work`.
    /// Lock held.
    private func fireLocked(_ work: DelayedWork, now: UInt64) -> (WakeUp, WorkqueueCore.Refused?) {
        lateness.record(now &- work.expires)
        return fireNowLocked(work)
    }

    /// Takes `work` off the heap and queues it where it was armed for (also
    /// `flush_delayed_work`'s early fire), unless that queue refuses it now (it drains: a
    /// timer is never chained work); then the item is dropped, and its reference is the
    /// caller's to give back. Returns a worker to wake, or the refusal. Lock held.
    func fireNowLocked(_ work: DelayedWork) -> (WakeUp, WorkqueueCore.Refused?) {
        let queue = work.targetQueue!
        let pwq = queue.pwq(cpu: work.targetCPU)
        disarmLocked(work)
        if _fastPath(queue.acceptsLocked()) { return (WorkqueueCore.shared.insertLocked(work, pwq), nil) }
        work.pending = false
        let report = !queue.warnedCannotQueue
        queue.warnedCannotQueue = true
        let stolen = WorkqueueCore.Stolen(work: work, owner: work.owner!, queue: queue, pwq: pwq)
        return (.none, WorkqueueCore.Refused(stolen: stolen, report: report))
    }
}

/// A pairing heap of armed delayed work, ordered by expiry then arming order, linked
/// through the items (no allocation). Insert O(1), remove-min and remove O(log n)
/// amortized.
@safe
struct TimerHeap {
    // SAFETY: the root is an armed item (pending: its queue reference keeps it alive).
    unowned(unsafe) private var _root: DelayedWork?
    var root: DelayedWork? { get { unsafe _root } set { unsafe _root = newValue } }

    private static func before(_ a: DelayedWork, _ b: DelayedWork) -> Bool {
        a.expires != b.expires ? a.expires < b.expires : a.timerSequence < b.timerSequence
    }

    /// Links two roots (no siblings, no previous) and returns the new root.
    private static func meld(_ a: DelayedWork, _ b: DelayedWork) -> DelayedWork {
        let (parent, child) = before(a, b) ? (a, b) : (b, a)
        child.heapSibling = parent.heapChild
        if let first = parent.heapChild { first.heapPrevious = child }
        child.heapPrevious = parent
        parent.heapChild = child
        parent.heapSibling = nil
        parent.heapPrevious = nil
        return parent
    }

    /// Melds a list of siblings, starting at `first`, into one heap (two passes).
    private static func mergePairs(_ first: DelayedWork?) -> DelayedWork? {
        guard first != nil else { return nil }
        // Pass 1: meld pairs left to right, stacking the results through `heapSibling`.
        var stack: DelayedWork?
        var cursor = first
        while let a = cursor {
            let b = a.heapSibling
            a.heapSibling = nil
            a.heapPrevious = nil
            guard let b else {
                a.heapSibling = stack
                stack = a
                break
            }
            cursor = b.heapSibling
            b.heapSibling = nil
            b.heapPrevious = nil
            let melded = meld(a, b)
            melded.heapSibling = stack
            stack = melded
        }
        // Pass 2: meld the stack (right to left) into one.
        guard var result = stack else { return nil }
        var rest = result.heapSibling
        result.heapSibling = nil
        while let next = rest {
            rest = next.heapSibling
            next.heapSibling = nil
            result = meld(result, next)
        }
        result.heapPrevious = nil
        return result
    }

    mutating func insert(_ node: DelayedWork) {
        node.heapChild = nil
        node.heapSibling = nil
        node.heapPrevious = nil
        if let root { self.root = Self.meld(root, node) } else { root = node }
    }

    mutating func remove(_ node: DelayedWork) {
        if node === root {
            root = Self.mergePairs(node.heapChild)
        } else {
            // Unlink from the parent's child list.
            if let previous = node.heapPrevious {
                if previous.heapChild === node { previous.heapChild = node.heapSibling } else { previous.heapSibling = node.heapSibling }
            }
            if let sibling = node.heapSibling { sibling.heapPrevious = node.heapPrevious }
            node.heapSibling = nil
            node.heapPrevious = nil
            if let subtree = Self.mergePairs(node.heapChild), let root {
                self.root = Self.meld(root, subtree)
            }
        }
        node.heapChild = nil
        node.heapSibling = nil
        node.heapPrevious = nil
    }
}

/// A latency histogram with fixed buckets (2 significant bits above 4 ns, up to 2^63 ns):
/// recording is two shifts and an increment, no allocation. Guarded by its owner's lock.
@safe
final class LatencyHistogram: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): only touched with `WorkqueueCore.lock` held.
    static let subBits = 2
    static let bucketCount = 64 << subBits
    private let counts: UnsafeMutablePointer<UInt64>
    private(set) var total: UInt64 = 0
    private(set) var maximum: UInt64 = 0

    init() {
        unsafe counts = .allocate(capacity: Self.bucketCount)
        unsafe counts.initialize(repeating: 0, count: Self.bucketCount)
    }

    deinit { unsafe counts.deallocate() }

    private static func bucket(_ value: UInt64) -> Int {
        if value < 1 << subBits { return Int(value) }
        let exponent = 63 - value.leadingZeroBitCount  // >= subBits
        let mantissa = Int(value >> UInt64(exponent - subBits)) & ((1 << subBits) - 1)
        return ((exponent - subBits + 1) << subBits) + mantissa
    }

    /// The largest value of `bucket`.
    private static func upperBound(_ bucket: Int) -> UInt64 {
        if bucket < 1 << subBits { return UInt64(bucket) }
        let exponent = (bucket >> subBits) + subBits - 1
        let mantissa = UInt64(bucket & ((1 << subBits) - 1)) | (1 << UInt64(subBits))
        let low = mantissa << UInt64(exponent - subBits)
        return low + (1 << UInt64(exponent - subBits)) - 1
    }

    func record(_ value: UInt64) {
        unsafe counts[Self.bucket(value)] &+= 1
        total &+= 1
        maximum = max(maximum, value)
    }

    /// The value below which `percent`% of the recorded values fall (a bucket's upper
    /// bound, so at most 25% over the true value), or 0 if nothing was recorded.
    func percentile(_ percent: Double) -> UInt64 {
        guard total > 0 else { return 0 }
        let rank = UInt64((percent / 100 * Double(total)).rounded(.up))
        var seen: UInt64 = 0
        for bucket in 0..<Self.bucketCount {
            seen &+= unsafe counts[bucket]
            if seen >= max(rank, 1) { return min(Self.upperBound(bucket), maximum) }
        }
        return maximum
    }
}

/// How late the delayed-work timer fired: from each timer's expiry to the moment the timer
/// thread saw it expired and queued the item, over every timer since the process started.
public struct TimerLateness: Sendable, Hashable, CustomStringConvertible {
    /// Timers fired.
    public let fired: UInt64
    /// Median lateness (bucketed: within 25% above the true value).
    public let p50: Duration
    /// 99th percentile lateness (bucketed).
    public let p99: Duration
    /// Largest lateness.
    public let max: Duration

    /// One line: `N timers: p50 …, p99 …, max … late`.
    public var description: String {
        "\(fired) timers: p50 \(p50), p99 \(p99), max \(max) late"
    }
}

extension Workqueue {
    /// How late the delayed-work timer has fired so far (never early: the figures are
    /// lateness only).
    public static var timerLateness: TimerLateness {
        let core = WorkqueueCore.shared
        return core.lock.withLock {
            let h = core.timer.lateness
            return TimerLateness(
                fired: h.total, p50: .nanoseconds(Int64(clamping: h.percentile(50))),
                p99: .nanoseconds(Int64(clamping: h.percentile(99))), max: .nanoseconds(Int64(clamping: h.maximum)))
        }
    }
}
