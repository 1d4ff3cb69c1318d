/// An interrupt line's number in an `IRQController` (the kernel's `unsigned int irq`).
public struct IRQNumber: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The line numbered `value` (truncated to 32 bits).
    public init(_ value: Int) { rawValue = UInt32(truncatingIfNeeded: value) }
    public init(integerLiteral value: UInt32) { rawValue = value }
    public var description: String { String(rawValue) }
    public static func < (a: IRQNumber, b: IRQNumber) -> Bool { a.rawValue < b.rawValue }
}
