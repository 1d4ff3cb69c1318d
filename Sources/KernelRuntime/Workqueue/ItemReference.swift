/// A work item's owner, by address: compared for identity, and the handle through which a
/// queue reference taken at an enqueue is given back.
@safe
struct ItemReference: Equatable, @unchecked Sendable {
    // SAFETY (@unchecked Sendable, and the `unsafe` below): the address of a live object
    // while its holder keeps a reference to it: `release()` is called only for a queue
    // reference that an enqueue took (`Unmanaged.passRetained`) and nobody gave back yet.
    private let raw: UnsafeMutableRawPointer

    init(_ object: AnyObject) { unsafe raw = Unmanaged.passUnretained(object).toOpaque() }

    static func == (a: ItemReference, b: ItemReference) -> Bool { unsafe a.raw == b.raw }

    /// Gives back one queue reference (the owner's `deinit` may run here).
    @inline(__always)
    func release() { unsafe Unmanaged<AnyObject>.fromOpaque(raw).release() }

    /// Takes one more reference (the releaser, an immortal object, only).
    func retain() { _ = unsafe Unmanaged<AnyObject>.fromOpaque(raw).retain() }
}
