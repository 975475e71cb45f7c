/// What a descriptor is waiting for, or is ready for.
struct IOEvents: OptionSet, Sendable {
    let rawValue: UInt8
    static let readable = IOEvents(rawValue: 1)
    static let writable = IOEvents(rawValue: 2)
    /// The peer is gone or the socket has an error (EPOLLHUP / EPOLLERR). Always delivered
    /// together with `.readable`, so a read reports the error, whatever the interest was.
    static let hangup = IOEvents(rawValue: 4)
}

/// The readiness queue behind the event loop (after FlyingFox's SocketPool and redis'
/// ae_epoll.c): register interest per descriptor under a caller-chosen 64-bit id, wait, wake.
/// Level-triggered: a ready descriptor is reported again until it is drained or its interest
/// is changed. Used by the loop thread only, except `wake()`, which any thread may call.
protocol EventQueue: AnyObject {
    func add(_ fd: Int32, id: UInt64, interest: IOEvents) throws(SocketError)
    func modify(_ fd: Int32, id: UInt64, interest: IOEvents) throws(SocketError)
    func remove(_ fd: Int32)
    /// Waits up to `timeoutMilliseconds` (-1: forever) and calls `handler` for each ready id.
    /// A `wake()` makes it return early; wake-ups are not reported to `handler`.
    func wait(timeoutMilliseconds: Int32, _ handler: (UInt64, IOEvents) -> Void) throws(SocketError)
    /// Thread-safe: makes a current or the next `wait` return.
    func wake()
    /// Releases the queue's descriptors. No other method may be called afterwards.
    func close()
}
