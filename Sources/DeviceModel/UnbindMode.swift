/// How `Device.unbind` releases the device's RCU Devres.
public enum UnbindMode: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Danilo Krummrich's plan: flip every Devres' flag, wait ONE grace period, then drop
    /// every value newest first. Not in the kernel as of mid-2026.
    case batched
    /// What the kernel does: each Devres, newest first, flips its flag, waits its own grace
    /// period and drops its value.
    case perObject

    public var description: String {
        switch self {
        case .batched: "batched"
        case .perObject: "per-object"
        }
    }
}

/// What one `Device.unbind` (or a failed probe's cleanup) did.
public struct UnbindReport: Sendable, Hashable, CustomStringConvertible {
    public let device: String
    public let mode: UnbindMode
    /// Resources released (Devres values and release actions).
    public let released: Int
    /// Grace periods the unbind waited for, counted on the unbinding thread.
    public let gracePeriods: UInt64
    /// Wall time of the whole unbind, `remove` included.
    public let seconds: Double

    public var description: String {
        "unbind \(device) [\(mode)]: \(released) released, \(gracePeriods) grace period(s), \(seconds * 1e3) ms"
    }
}
