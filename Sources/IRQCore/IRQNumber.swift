/// An interrupt line's number in an `IRQController` (the kernel's `unsigned int irq`).
public struct IRQNumber: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    /// The number.
    public let rawValue: UInt32
    /// The line numbered `rawValue`.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The line numbered `value` (truncated to 32 bits).
    public init(_ value: Int) { rawValue = UInt32(truncatingIfNeeded: value) }
    /// The line numbered `value`: `let irq: IRQNumber = 3`.
    public init(integerLiteral value: UInt32) { rawValue = value }
    /// The number in decimal, as `/proc/interrupts` prints it.
    public var description: String { String(rawValue) }
    /// Orders lines by number.
    public static func < (a: IRQNumber, b: IRQNumber) -> Bool { a.rawValue < b.rawValue }
}
