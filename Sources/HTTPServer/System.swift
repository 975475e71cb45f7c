import Glibc

/// The outcome of a non-blocking system call that did not fail.
enum IOResult<T: Sendable>: Sendable {
    case processed(T)
    /// EAGAIN / EWOULDBLOCK: nothing to do until epoll says the descriptor is ready.
    case wouldBlock
}

/// The one place system-call results are interpreted (after swift-nio's `System.swift`):
/// EINTR is retried, EAGAIN becomes `.wouldBlock`, EBADF and EFAULT are bugs in this process
/// (a closed or foreign descriptor, a bad pointer) and stop it, anything else is thrown.
@inline(__always)
func retryingSyscall<T: FixedWidthInteger & Sendable>(_ name: String, _ body: () -> T) throws(SocketError) -> IOResult<T> {
    while true {
        let result = body()
        if result >= 0 { return .processed(result) }
        let error = errno
        switch error {
        case EINTR: continue
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        case EBADF, EFAULT: preconditionFailure("\(name) failed with unacceptable errno \(error): a bug in this process")
        default: throw SocketError(name, errorNumber: error)
        }
    }
}

/// Closes `fd`, NOT retrying on EINTR: on Linux the descriptor is released even when close
/// reports EINTR, so a retry could close a descriptor another thread has just been given.
/// Other errors are ignored too: after a failed close the descriptor is released or was never
/// open, and there is nothing sensible left to do about it.
@inline(__always)
func closeDescriptor(_ fd: Int32) {
    _ = Glibc.close(fd)
}

/// Calls Glibc's Swift overlay does not import (it leaves out `sys/epoll.h`,
/// `sys/eventfd.h` and the `_GNU_SOURCE` `accept4`). A C shim target like CCurl could declare
/// them too; looking them up once with `dlsym` keeps HTTPServer free of any C module, and
/// calling through `@convention(c)` pointers keeps the C calling convention exact (unlike
/// `@_silgen_name`).
enum Linux {
    private static func resolve<T>(_ name: String, as type: T.Type) -> T {
        // A nil handle is RTLD_DEFAULT: search every object already loaded (libc included).
        guard let symbol = dlsym(nil, name) else {
            fatalError("libc has no \(name): this server needs Linux")
        }
        return unsafeBitCast(symbol, to: type)
    }

    static let accept4 = resolve(
        "accept4",
        as: (@convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32).self)
    static let eventfd = resolve("eventfd", as: (@convention(c) (UInt32, Int32) -> Int32).self)
    static let epollCreate1 = resolve("epoll_create1", as: (@convention(c) (Int32) -> Int32).self)
    static let epollCtl = resolve(
        "epoll_ctl", as: (@convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32).self)
    static let epollWait = resolve(
        "epoll_wait", as: (@convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32).self)

    // <sys/epoll.h> and <sys/eventfd.h> values; the same on every Linux architecture.
    static let EPOLLIN: UInt32 = 0x001
    static let EPOLLOUT: UInt32 = 0x004
    static let EPOLLERR: UInt32 = 0x008
    static let EPOLLHUP: UInt32 = 0x010
    static let EPOLL_CTL_ADD: Int32 = 1
    static let EPOLL_CTL_DEL: Int32 = 2
    static let EPOLL_CTL_MOD: Int32 = 3
    static let EPOLL_CLOEXEC: Int32 = O_CLOEXEC
    static let EFD_CLOEXEC: Int32 = O_CLOEXEC
    static let EFD_NONBLOCK: Int32 = O_NONBLOCK

    /// `struct epoll_event` is `__attribute__((packed))` on x86-64 (12 bytes) and naturally
    /// aligned elsewhere (16 bytes); fields are read and written through raw memory.
    #if arch(x86_64)
    static let epollEventSize = 12
    static let epollDataOffset = 4
    #else
    static let epollEventSize = 16
    static let epollDataOffset = 8
    #endif
}

/// Monotonic time in nanoseconds: cheap (vDSO), never jumps with the wall clock.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

extension Duration {
    /// Whole nanoseconds, clamped at zero (a negative timeout means "at once").
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        let (scaled, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? UInt64.max / 2 : scaled + UInt64(attoseconds / 1_000_000_000)
    }
}
