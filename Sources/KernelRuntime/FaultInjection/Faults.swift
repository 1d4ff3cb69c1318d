import SystemPackage

/// A fault-injection configuration: which faults irqemu injects, how often, and the seed
/// that makes each decision reproducible. Every knob is off by default.
///
/// Set one for the process (`FaultInjection.process`, or the `IRQEMU_FAULTS` environment
/// variable, read once), a controller (`IRQController(faults:)`) or a device
/// (`Device(faults:)`): the device's applies to its probe, remove, unbind and handlers, the
/// controller's to its CPUs and requests, the process's everywhere else.
///
/// Each decision is a hash of (seed, injection site, the calling thread's name, that
/// thread's count of decisions at that site), so a given thread at a given site gets the
/// same decisions run to run. The operating system's interleaving of threads does not
/// repeat: a seed reproduces what each thread is dealt, not the order threads meet in.
///
/// The text form, which `description` prints and `init(parsing:)` reads, is a comma-separated
/// list: `seed=42,gp=0.2:2ms,reader=0.01:0,request-fail=0.05,quarantine=50ms`.
public struct Faults: Sendable, Hashable, CustomStringConvertible {
    /// A probability and the longest delay to inject when it fires (the delay is drawn
    /// uniformly up to it; zero: a yield).
    public struct Delay: Sendable, Hashable {
        /// How often the fault fires, from 0 to 1.
        public var probability: Double
        /// The longest delay injected.
        public var maximum: Duration

        /// A delay of up to `maximum`, injected with `probability`.
        public init(probability: Double, maximum: Duration) {
            self.probability = probability
            self.maximum = maximum
        }
    }

    /// The seed of every decision.
    public var seed: UInt64 = 0

    // 1. Stretched grace periods.
    /// An extra delay after each grace period irqemu waits for (`RCU.synchronize`,
    /// revoke, unbind). A longer grace period is always legal.
    public var gracePeriod: Delay?
    /// An extra delay before each `call_rcu` callback runs.
    public var callback: Delay?

    // 2. Reader preemption.
    /// A yield (maximum zero) or sleep at the start of each RCU read-side section, before
    /// the caller's code reaches anything through RCU: a grace period that starts meanwhile
    /// waits for it, and readers lose their CPU where a preemptible kernel would preempt
    /// them (`RCUThread` says how it is placed). Applies to threads
    /// that register with RCU after it is configured (so set it before starting readers):
    /// their read locks take the read lock's out-of-line slow path, where it is injected;
    /// threads registered before keep the inlined fast path and are never delayed.
    public var readerPreemption: Delay?

    // 3. Handler timing.
    /// A delay (a spin: hard-IRQ context may not sleep) before a primary handler runs.
    public var primaryHandler: Delay?
    /// A delay before a threaded handler runs after its wake-up.
    public var threadedHandler: Delay?
    /// A delay inside free_irq, before it waits for the line's handlers.
    public var freeIRQWait: Delay?

    // 4. Extra interrupts.
    /// How often an edge interrupt is delivered twice.
    public var duplicateEdge: Double = 0
    /// How often a CPU delivers an interrupt no device raised, on one of its lines.
    public var spuriousInterrupt: Double = 0
    /// After each release step of an unbind, raise each of the device's requested lines
    /// and wait for their handlers.
    public var interruptsDuringUnbind = false

    // 5. Failures.
    /// How often request_irq fails with ENOMEM.
    public var requestFailure: Double = 0
    /// How often `Devres` creation fails with ENOMEM.
    public var devresFailure: Double = 0
    /// How often a thread cannot be created (EAGAIN, as `pthread_create`).
    public var threadCreationFailure: Double = 0

    // 6. Delayed release.
    /// Keep each released Devres value this long before its deinit runs (the release
    /// itself, free_irq for a registration, happens on time).
    public var quarantine: Duration?

    // Bottom halves.
    /// A delay before a work item runs.
    public var workItem: Delay?
    /// Jitter added to a delayed work's timer (never early).
    public var timerJitter: Delay?

    /// Nothing injected.
    public static let none = Faults()

    /// Nothing injected yet, with `seed`.
    public init(seed: UInt64 = 0) { self.seed = seed }

    /// Whether any knob is on.
    public var isActive: Bool {
        var copy = self
        copy.seed = 0
        return copy != .none
    }

    private static var knobs: [(String, WritableKeyPath<Faults, Delay?>)] { [
        ("gp", \.gracePeriod), ("callback", \.callback), ("reader", \.readerPreemption),
        ("primary", \.primaryHandler), ("threaded", \.threadedHandler), ("free", \.freeIRQWait),
        ("work", \.workItem), ("timer", \.timerJitter),
    ] }
    private static var rates: [(String, WritableKeyPath<Faults, Double>)] { [
        ("duplicate", \.duplicateEdge), ("spurious", \.spuriousInterrupt), ("request-fail", \.requestFailure),
        ("devres-fail", \.devresFailure), ("thread-fail", \.threadCreationFailure),
    ] }

    /// Reads the text form (see the type's description).
    ///
    /// - Throws: `Errno.invalidArgument` for a word it does not know or a value out of range.
    public init(parsing text: String) throws(Errno) {
        for word in text.split(separator: ",").map({ $0.trimmingCharacters() }) where !word.isEmpty {
            let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw .invalidArgument }
            let (key, value) = (parts[0], parts[1])
            if key == "seed" {
                guard let seed = UInt64(value) else { throw .invalidArgument }
                self.seed = seed
            } else if key == "unbind-irqs" {
                interruptsDuringUnbind = value == "1" || value == "true"
            } else if key == "quarantine" {
                guard let duration = Self.duration(value) else { throw .invalidArgument }
                quarantine = duration
            } else if let knob = Self.knobs.first(where: { $0.0 == key }) {
                let halves = value.split(separator: ":", maxSplits: 1).map(String.init)
                guard let p = Double(halves[0]), (0...1).contains(p) else { throw .invalidArgument }
                let maximum = halves.count > 1 ? Self.duration(halves[1]) : .zero
                guard let maximum else { throw .invalidArgument }
                self[keyPath: knob.1] = Delay(probability: p, maximum: maximum)
            } else if let rate = Self.rates.first(where: { $0.0 == key }) {
                guard let p = Double(value), (0...1).contains(p) else { throw .invalidArgument }
                self[keyPath: rate.1] = p
            } else {
                throw .invalidArgument
            }
        }
    }

    /// The text form: every knob that is on, and the seed.
    public var description: String {
        var words = ["seed=\(seed)"]
        for (name, path) in Self.knobs {
            if let delay = self[keyPath: path] { words.append("\(name)=\(delay.probability):\(Self.text(delay.maximum))") }
        }
        for (name, path) in Self.rates where self[keyPath: path] > 0 { words.append("\(name)=\(self[keyPath: path])") }
        if interruptsDuringUnbind { words.append("unbind-irqs=1") }
        if let quarantine { words.append("quarantine=\(Self.text(quarantine))") }
        return words.joined(separator: ",")
    }

    /// `2ms`, `150us`, `1s`, `500ns`, or plain nanoseconds.
    private static func duration(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1_000_000), ("us", 1_000), ("ns", 1), ("s", 1_000_000_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let n = Int64(text.dropLast(suffix.count)), n >= 0 else { return nil }
            return .nanoseconds(n * scale)
        }
        guard let n = Int64(text), n >= 0 else { return nil }
        return .nanoseconds(n)
    }

    private static func text(_ duration: Duration) -> String {
        let ns = duration.clampedNanoseconds
        if ns == 0 { return "0" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
