import CSupport
import Glibc
import IRQCore
import KernelRuntime
import Synchronization

/// An eventfd line: any thread, or any process holding the descriptor, raises the line by
/// writing to it. Writes that arrive before the handler runs fold into one interrupt, and
/// `raised` counts every write.
///
/// Level lines take a resample eventfd, as VFIO does for INTx: the trigger fd asserts the
/// line; after the line is unmasked the library writes the resample fd, and the device side
/// writes the trigger again if it is still asserted. For a device emulated in this process,
/// `IRQController.assertLine(_:)`/`deassertLine(_:)` keep that state here (the line's
/// `LevelInput`) and re-trigger on resample themselves.
final class EventFDSource: InterruptSource, LevelInput, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the descriptors are immutable after init; `asserted`
    // is atomic.
    private let trigger: EventFD
    /// The resample eventfd of a level line (owned: closed in deinit).
    let resampleFD: Int32?
    let asserted = Atomic<Bool>(false)

    /// Every descriptor an eventfd line owns, process-wide: one is never adopted twice
    /// (two owners would close it twice).
    private static let owned = LockedValue<Set<Int32>>([])

    /// - Throws: `invalidArgument` for a resample eventfd on an edge line, or an adopted
    ///   descriptor that is not an open eventfd; `busy` for one that a line already owns.
    ///   Those are refused before anything is taken: the caller still owns its descriptors.
    init(adopting triggerFD: Int32?, resampleFD: Int32?, level: Bool, irq: IRQNumber) throws(IRQError) {
        if let resampleFD, !level {
            throw .invalidArgument(irq: irq, reason: "resample fd \(resampleFD) given for an edge line")
        }
        if let triggerFD, triggerFD == resampleFD {
            throw .invalidArgument(irq: irq, reason: "fd \(triggerFD) given as both trigger and resample eventfd")
        }
        let adopted = [triggerFD, resampleFD].compactMap { $0 }
        for fd in adopted { try Self.checkAdoptable(fd, irq: irq) }
        try Self.owned.withLock { (owned: inout Set<Int32>) throws(IRQError) in
            if let taken = adopted.first(where: owned.contains) {
                throw .busy(irq: irq, reason: "fd \(taken) is already an eventfd line's")
            }
            owned.formUnion(adopted)
        }
        // Created descriptors are new numbers; `owned` records them too.
        do throws(IRQError) {
            if let triggerFD {
                trigger = try EventFD(adopting: triggerFD)
            } else {
                trigger = try EventFD()
            }
        } catch {
            Self.owned.withLock { $0.subtract(adopted) }
            throw error
        }
        if !level {
            self.resampleFD = nil
        } else if let resampleFD {
            self.resampleFD = resampleFD
        } else {
            let created: Int32
            do throws(IRQError) {
                created = try syscall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
            } catch {
                Self.owned.withLock { $0.subtract(adopted) }
                throw error  // `trigger` closes an adopted trigger fd: it was taken
            }
            self.resampleFD = created
        }
        let mine = [trigger.fd] + [self.resampleFD].compactMap { $0 }
        Self.owned.withLock { $0.formUnion(mine) }
    }

    deinit {
        // Forget the numbers before they are closed (and may be reused).
        let trigger = self.trigger.fd, resample = resampleFD
        Self.owned.withLock { owned in
            owned.remove(trigger)
            if let resample { owned.remove(resample) }
        }
        if let resampleFD { close(resampleFD) }
    }

    /// Refuses a descriptor that is not an open eventfd (`readlink` of /proc/self/fd/N).
    private static func checkAdoptable(_ fd: Int32, irq: IRQNumber) throws(IRQError) {
        guard fd >= 0, fcntl(fd, F_GETFD) != -1 else {
            throw .invalidArgument(irq: irq, reason: "fd \(fd) is not an open descriptor")
        }
        var target = [CChar](repeating: 0, count: 64)
        let n = unsafe readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
        let name = n > 0 ? String(decoding: target.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        guard name == "anon_inode:[eventfd]" else {
            throw .invalidArgument(irq: irq, reason: "fd \(fd) is not an eventfd (\(name))")
        }
    }

    var chipName: String { "eventfd" }
    var hwirq: Int { Int(trigger.fd) }
    var fileDescriptor: Int32? { trigger.fd }
    /// A level line's input: only with a resample eventfd.
    var levelInput: (any LevelInput)? { resampleFD == nil ? nil : self }
    var triggerFD: Int32 { trigger.fd }

    @inline(__always)
    func acknowledge() -> UInt64 { trigger.drain() }

    func raise() throws(IRQError) { trigger.signal() }

    // MARK: LevelInput (level lines)

    var isAsserted: Bool { asserted.load(ordering: .acquiring) }

    func setAsserted(_ asserted: Bool) throws(IRQError) {
        self.asserted.store(asserted, ordering: .releasing)
        if asserted { trigger.signal() }
    }

    func lineUnmasked() {
        guard let resampleFD else { return }
        var one: UInt64 = 1
        _ = unsafe write(resampleFD, &one, 8)
        if asserted.load(ordering: .acquiring) { trigger.signal() }
    }
}

/// Eventfd lines.
extension IRQController {
    /// Adds a line backed by an eventfd: the library's own, or `adopting` one the caller
    /// passes (the controller then owns and closes it).
    ///
    /// - Parameters:
    ///   - trigger: `.triggerRising` (default) or, with a resample eventfd, `.triggerHigh`.
    ///   - triggerFD: An eventfd to adopt as the line's trigger (one is created if nil).
    ///   - resample: For a level line, the resample eventfd to adopt (one is created if nil).
    ///   - cpu: The emulated CPU the line is routed to; round robin if nil.
    /// - Throws: `invalidArgument` for a `resample` eventfd on an edge line, or an adopted
    ///   descriptor that is not an open eventfd; `busy` for one that an eventfd line already
    ///   owns (in any controller). Refused descriptors stay the caller's, open.
    @discardableResult
    public func addEventFDLine(
        trigger: IRQFlags = .triggerRising, adopting triggerFD: Int32? = nil, resample: Int32? = nil, cpu: Int? = nil
    ) throws(IRQError) -> IRQNumber {
        try addLine(trigger: trigger, cpu: cpu) { irq throws(IRQError) in
            try EventFDSource(adopting: triggerFD, resampleFD: resample, level: trigger.isLevel, irq: irq)
        }
    }

    /// The trigger eventfd of an eventfd line, to hand to another thread or process.
    public func eventFD(of irq: IRQNumber) throws(IRQError) -> Int32 {
        guard let source = try source(of: irq) as? EventFDSource else {
            throw .invalidArgument(irq: irq, reason: "not an eventfd line")
        }
        return source.triggerFD
    }

    /// The resample eventfd of a level eventfd line.
    public func resampleFD(of irq: IRQNumber) throws(IRQError) -> Int32 {
        guard let source = try source(of: irq) as? EventFDSource, let fd = source.resampleFD else {
            throw .invalidArgument(irq: irq, reason: "not a level eventfd line")
        }
        return fd
    }
}
