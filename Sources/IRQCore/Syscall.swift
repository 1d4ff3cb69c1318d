import CSupport
import Glibc
import SystemPackage

/// Runs a system call that returns -1 and sets `errno` on failure: retries `EINTR`, traps
/// on errnos that can only mean a bug in irqemu (`EBADF`, `EFAULT`), and throws the rest.
@inline(__always)
package func syscall<T: FixedWidthInteger>(
    _ name: StaticString, _ body: () -> T
) throws(IRQError) -> T {
    while true {
        let result = body()
        if _fastPath(result != -1) { return result }
        let err = errno
        switch err {
        case EINTR: continue
        case EBADF, EFAULT: preconditionFailure("\(name): unacceptable errno \(err)")
        default: throw .system(call: "\(name)", errno: Errno(rawValue: err))
        }
    }
}

/// An eventfd: a 64-bit counter other threads or processes add to and one reader drains.
/// The "wire" of eventfd lines, the signal forwarder and the dispatcher's kick.
/// Owns the descriptor: closes it when dropped.
package struct EventFD: ~Copyable {
    package let fd: Int32

    /// A new non-blocking, close-on-exec eventfd.
    package init() throws(IRQError) {
        fd = try syscall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
    }

    /// Takes over an existing descriptor, which is made non-blocking.
    package init(adopting fd: Int32) throws(IRQError) {
        let flags = try syscall("fcntl") { fcntl(fd, F_GETFL) }
        _ = try syscall("fcntl") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        self.fd = fd
    }

    /// Adds `value` to the counter (`eventfd_write`). Never blocks unless the counter is
    /// about to overflow.
    package func signal(_ value: UInt64 = 1) {
        var v = value
        while unsafe write(fd, &v, 8) == -1 && errno == EINTR {}
    }

    /// Reads and resets the counter; 0 if it was 0.
    @inline(__always)
    package func drain() -> UInt64 { Self.drain(fd) }

    /// Reads and resets the counter of the non-blocking eventfd `fd`, which the caller
    /// keeps open; 0 if it was 0.
    @inline(__always)
    package static func drain(_ fd: Int32) -> UInt64 {
        var value: UInt64 = 0
        while true {
            let n = unsafe read(fd, &value, 8)
            if _fastPath(n == 8) { return value }
            if n == -1 && errno == EINTR { continue }
            return 0
        }
    }

    deinit { close(fd) }
}

/// An epoll instance: one per emulated CPU.
package struct Epoll: ~Copyable {
    package let fd: Int32

    package init() throws(IRQError) {
        fd = try syscall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
    }

    /// Stops watching `target`.
    package func remove(_ target: Int32) {
        _ = CSupport_epoll_ctl(fd, EPOLL_CTL_DEL, target, 0, 0)
    }

    /// Watches `target` for readability (level-triggered), tagged with `data`.
    package func add(_ target: Int32, data: UInt64, armed: Bool = true) throws(IRQError) {
        _ = try syscall("epoll_ctl") {
            CSupport_epoll_ctl(fd, EPOLL_CTL_ADD, target, armed ? EPOLLIN.rawValue : 0, data)
        }
    }

    /// Arms (unmask) or disarms (mask) `target`.
    package func modify(_ target: Int32, data: UInt64, armed: Bool) {
        _ = CSupport_epoll_ctl(fd, EPOLL_CTL_MOD, target, armed ? EPOLLIN.rawValue : 0, data)
    }

    /// Waits for events (`epoll_wait`), storing each one's tag. Returns the count (0 on a
    /// timeout or EINTR).
    @inline(__always)
    package func wait(into tags: UnsafeMutablePointer<UInt64>, capacity: Int32, timeout: Int32) -> Int {
        let n = unsafe CSupport_epoll_wait(fd, tags, capacity, timeout)
        return n > 0 ? Int(n) : 0
    }

    deinit { close(fd) }
}
