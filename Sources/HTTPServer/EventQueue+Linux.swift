import Glibc

/// `EventQueue` on epoll, woken through an eventfd.
///
/// `@unchecked Sendable` because `wake()` is called from any thread: it only writes to the
/// eventfd, whose descriptor number never changes while the queue is open. The owner
/// guarantees no `wake()` runs concurrently with or after `close()` (see `EventLoop.inbox`).
final class EpollQueue: EventQueue, @unchecked Sendable {
    private let epollFD: Int32
    private let wakeFD: Int32
    /// The id under which the eventfd is registered; never handed to the handler.
    private static let wakeID = UInt64.max
    private let capacity = 256
    private let events: UnsafeMutableRawPointer

    init() throws(SocketError) {
        let epollFD = Linux.epollCreate1(Linux.EPOLL_CLOEXEC)
        guard epollFD >= 0 else { throw SocketError.makeFailed("epoll_create1") }
        let wakeFD = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK)
        guard wakeFD >= 0 else {
            let error = SocketError.makeFailed("eventfd")
            closeDescriptor(epollFD)
            throw error
        }
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        events = .allocate(byteCount: capacity * Linux.epollEventSize, alignment: 8)
        do {
            try control(Linux.EPOLL_CTL_ADD, wakeFD, id: Self.wakeID, interest: .readable)
        } catch {
            close()
            throw error
        }
    }

    func add(_ fd: Int32, id: UInt64, interest: IOEvents) throws(SocketError) {
        try control(Linux.EPOLL_CTL_ADD, fd, id: id, interest: interest)
    }

    func modify(_ fd: Int32, id: UInt64, interest: IOEvents) throws(SocketError) {
        try control(Linux.EPOLL_CTL_MOD, fd, id: id, interest: interest)
    }

    func remove(_ fd: Int32) {
        // Closing a descriptor also drops it from the epoll set; removing first keeps the set
        // exact even if the descriptor was duplicated. A failure here has no remedy.
        _ = Linux.epollCtl(epollFD, Linux.EPOLL_CTL_DEL, fd, nil)
    }

    func wait(timeoutMilliseconds: Int32, _ handler: (UInt64, IOEvents) -> Void) throws(SocketError) {
        let count: Int32
        switch try retryingSyscall("epoll_wait", { Linux.epollWait(epollFD, events, Int32(capacity), timeoutMilliseconds) }) {
        case .processed(let n): count = n
        case .wouldBlock: return
        }
        for index in 0..<Int(count) {
            let event = events + index * Linux.epollEventSize
            let flags = event.loadUnaligned(as: UInt32.self)
            let id = event.loadUnaligned(fromByteOffset: Linux.epollDataOffset, as: UInt64.self)
            if id == Self.wakeID {
                drainWakeups()
                continue
            }
            var ready: IOEvents = []
            if flags & Linux.EPOLLIN != 0 { ready.insert(.readable) }
            if flags & Linux.EPOLLOUT != 0 { ready.insert(.writable) }
            // Errors and hang-ups surface as readable: the next read returns 0 or the error,
            // and the connection is closed on that one path.
            if flags & (Linux.EPOLLERR | Linux.EPOLLHUP) != 0 { ready.formUnion([.readable, .hangup]) }
            handler(id, ready)
        }
    }

    func wake() {
        var one: UInt64 = 1
        // EAGAIN means the counter is already non-zero: a wake-up is pending anyway.
        _ = try? retryingSyscall("write(eventfd)") { Glibc.write(wakeFD, &one, 8) }
    }

    func close() {
        closeDescriptor(wakeFD)
        closeDescriptor(epollFD)
        events.deallocate()
    }

    private func drainWakeups() {
        var counter: UInt64 = 0
        _ = try? retryingSyscall("read(eventfd)") { Glibc.read(wakeFD, &counter, 8) }
    }

    private func control(_ operation: Int32, _ fd: Int32, id: UInt64, interest: IOEvents) throws(SocketError) {
        var flags: UInt32 = 0
        if interest.contains(.readable) { flags |= Linux.EPOLLIN }
        if interest.contains(.writable) { flags |= Linux.EPOLLOUT }
        // A 16-byte scratch event is large enough for both layouts.
        var event: (UInt64, UInt64) = (0, 0)
        let rc = withUnsafeMutableBytes(of: &event) { raw -> Int32 in
            raw.storeBytes(of: flags, as: UInt32.self)
            raw.storeBytes(of: id, toByteOffset: Linux.epollDataOffset, as: UInt64.self)
            return Linux.epollCtl(epollFD, operation, fd, raw.baseAddress)
        }
        guard rc == 0 else { throw SocketError.makeFailed("epoll_ctl") }
    }
}
