import Glibc
import Locking
import Logging
import Synchronization

/// One of the server's event loops: a thread of its own blocks in epoll_wait on its
/// connections (and, for the first loop, on the listener); responders run as Tasks and hand
/// their responses back through `inbox`, and answers that need no waiting are made on the
/// loop thread (`HTTPResponder.respondImmediately`). The first loop accepts every connection
/// and deals them out in turn: its own turn it serves itself, the others' go through their
/// inboxes.
///
/// `@unchecked Sendable` because the class crosses threads (the loop thread, responder Tasks,
/// `shutdown()` callers) while guarding its state itself:
/// - `inbox` is the only state other threads touch, and only under its mutex.
/// - Everything else that changes is touched by the loop thread alone, from `run()` on.
/// - The `let`s are immutable; `queue.wake()` is thread-safe and only called under the
///   inbox lock while `finished` is false, so it never writes to a closed eventfd.
final class EventLoop: @unchecked Sendable {
    struct Inbox {
        /// Responses waiting to be written, by connection id.
        var completions: [(UInt64, HTTPResponse)] = []
        /// Connections accepted by the first loop for this one to serve.
        var adopted: [(fd: Int32, id: UInt64)] = []
        /// A wake-up is on its way: one per batch of completions and adoptions.
        var wakePending = false
        var shutdownRequested = false
        /// `shutdown()` callers waiting for the loop to end.
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// The loop has ended and its descriptors are closed.
        var finished = false
    }

    static let listenerID: UInt64 = 0

    let configuration: HTTPServerConfiguration
    let responder: any HTTPResponder
    let logger: Logger
    let limits: HTTPParserLimits
    let queue: EventQueue
    let inbox = PThreadMutex(Inbox())
    /// Connections open in all of the server's loops: the limit is the server's, not a loop's.
    let openConnections: ConnectionCount

    let headerTimeout: UInt64
    let bodyTimeout: UInt64
    let idleTimeout: UInt64
    let shutdownTimeout: UInt64
    /// How long a closing connection is drained before close() (see `Connection.Phase.lingering`).
    let lingerTimeout: UInt64 = 2_000_000_000
    let lingerByteLimit = 1 << 20
    let maxConnections: Int

    // Loop-thread state.
    /// -1 for every loop but the first.
    var listenerFD: Int32
    var connections: [UInt64: Connection] = [:]
    var nextConnectionID: UInt64 = 1
    /// The other loops accepted connections go to, in turn with this one (the first loop only;
    /// set before its thread starts, never changed after). Never this loop itself: a loop
    /// holding itself would never be freed.
    var peers: [EventLoop] = []
    var nextPeer = 0
    var shuttingDown = false
    var shutdownDeadline: UInt64 = .max
    /// No connection's deadline is earlier than this; lets most loop turns skip the scan.
    var nextDeadline: UInt64 = .max
    var dateCache = HTTPDateCache()
    /// Scratch space for recv; the bytes are copied into the connection's input at once.
    let readBuffer: UnsafeMutableRawBufferPointer
    /// A descriptor held in reserve: when accept fails with EMFILE, it is closed to make room
    /// to accept and refuse the pending connection, which would otherwise keep the listener
    /// readable and spin the loop (the libev/nginx trick).
    var spareFD: Int32 = -1
    var refusedSinceLog = 0
    var lastRefusalLog: UInt64 = 0

    /// Takes ownership of `listenerFD` (-1: this loop does not accept) on success only.
    init(
        listenerFD: Int32, openConnections: ConnectionCount, configuration: HTTPServerConfiguration,
        responder: any HTTPResponder, logger: Logger
    ) throws {
        self.openConnections = openConnections
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
        self.limits = HTTPParserLimits(configuration)
        self.headerTimeout = configuration.headerTimeout.clampedNanoseconds
        self.bodyTimeout = configuration.bodyTimeout.clampedNanoseconds
        self.idleTimeout = configuration.idleTimeout.clampedNanoseconds
        self.shutdownTimeout = configuration.shutdownTimeout.clampedNanoseconds
        self.maxConnections = max(1, configuration.maxConnections)
        self.listenerFD = listenerFD
        let queue = try EpollQueue()
        do {
            if listenerFD >= 0 { try queue.add(listenerFD, id: Self.listenerID, interest: .readable) }
        } catch {
            queue.close()
            throw error
        }
        self.queue = queue
        readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        // Only the loop that accepts needs a descriptor in reserve.
        if listenerFD >= 0 { spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC) }
    }

    /// Releases everything when the loop thread could not be started; the caller still owns
    /// nothing afterwards (the listener is closed here).
    func discard() {
        inbox.withLock { $0.finished = true }
        queue.close()
        if listenerFD >= 0 { closeDescriptor(listenerFD) }
        if spareFD >= 0 { closeDescriptor(spareFD) }
        readBuffer.deallocate()
    }

    // MARK: The loop thread

    func run() {
        while true {
            let now = monotonicNanoseconds()
            if shuttingDown && (now >= shutdownDeadline || allResponsesWritten) { break }
            do {
                try queue.wait(timeoutMilliseconds: waitTimeout(now: now)) { id, events in
                    handle(id, events)
                }
            } catch {
                logger.critical("The HTTP event loop stops: epoll_wait failed", metadata: ["error": "\(error)"])
                break
            }
            drainInbox()
            let after = monotonicNanoseconds()
            if after >= nextDeadline { expireDeadlines(now: after) }
        }
        finish()
    }

    /// During shutdown: nothing is left but connections whose last response is fully written
    /// (lingering ones are closed by `finish()` rather than waited for). O(connections), and
    /// only evaluated while shutting down.
    private var allResponsesWritten: Bool {
        connections.values.allSatisfy { connection in
            if case .lingering = connection.phase { return true }
            return false
        }
    }

    private func waitTimeout(now: UInt64) -> Int32 {
        let target = shuttingDown ? min(nextDeadline, shutdownDeadline) : nextDeadline
        if target <= now { return 0 }
        // Rounded up so the deadline has passed when epoll returns; capped as a safety net.
        return Int32(min((target - now + 999_999) / 1_000_000, 1_000))
    }

    private func handle(_ id: UInt64, _ events: IOEvents) {
        if id == Self.listenerID {
            acceptConnections()
            return
        }
        guard let connection = connections[id] else { return }
        // A hang-up while we are not reading (the responder is busy, or a write is pending):
        // both directions are gone, so nothing can be delivered any more.
        if events.contains(.hangup) && !connection.isReading {
            close(connection, reason: "peer hung up")
            return
        }
        if events.contains(.writable) { flush(connection) }
        if events.contains(.readable) && !connection.isClosed && connection.isReading { read(connection) }
    }

    private func drainInbox() {
        var completions: [(UInt64, HTTPResponse)] = []
        var adopted: [(fd: Int32, id: UInt64)] = []
        let shutdownRequested = inbox.withLock { inbox in
            swap(&completions, &inbox.completions)
            swap(&adopted, &inbox.adopted)
            inbox.wakePending = false
            return inbox.shutdownRequested
        }
        for (fd, id) in adopted {
            if shuttingDown {
                closeDescriptor(fd)
                openConnections.remove()
            } else {
                serve(fd, id: id)
            }
        }
        for (id, response) in completions { respond(id, response) }
        if shutdownRequested && !shuttingDown { beginShutdown() }
    }

    // MARK: Deadlines

    func setDeadline(_ connection: Connection, after interval: UInt64) {
        let deadline = monotonicNanoseconds() &+ interval
        connection.deadline = deadline
        if deadline < nextDeadline { nextDeadline = deadline }
    }

    /// O(connections), but only when some deadline is due; 2,000 connections take microseconds.
    private func expireDeadlines(now: UInt64) {
        var next = UInt64.max
        var expired: [Connection] = []
        for connection in connections.values {
            guard let deadline = connection.deadline else { continue }
            if deadline <= now { expired.append(connection) } else { next = min(next, deadline) }
        }
        nextDeadline = next
        for connection in expired where !connection.isClosed {
            connection.deadline = nil
            switch connection.phase {
            case .readingHead where connection.input.isEmpty && connection.requestsServed > 0:
                // RFC 9112 §9.5: an idle keep-alive connection may be closed at any time; no
                // 408 here, the client may be about to reuse it and would misread one.
                close(connection, reason: "idle timeout")
            case .readingHead:
                fail(connection, status: 408, detail: "The request head did not arrive within \(configuration.headerTimeout).")
            case .readingBody:
                fail(connection, status: 408, detail: "The request body did not arrive within \(configuration.bodyTimeout).")
            case .writingResponse:
                close(connection, reason: "client stopped reading the response")
            case .lingering:
                close(connection, reason: "closed after response")
            case .responding:
                break
            }
        }
    }

    // MARK: Responses from responder Tasks (any thread)

    /// Hands a finished response to the loop thread. Safe from any thread; dropped if the
    /// loop has already ended.
    func deliver(_ id: UInt64, _ response: HTTPResponse) {
        inbox.withLock { inbox in
            guard !inbox.finished else { return }
            inbox.completions.append((id, response))
            Self.wakeOnce(&inbox, queue)
        }
    }

    /// Hands an accepted connection (counted in `openConnections`) to this loop. Safe from any
    /// thread. False once the loop has ended: the caller still owns the descriptor.
    func adopt(_ fd: Int32, id: UInt64) -> Bool {
        inbox.withLock { inbox in
            guard !inbox.finished else { return false }
            inbox.adopted.append((fd, id))
            Self.wakeOnce(&inbox, queue)
            return true
        }
    }

    /// One wake-up per batch: while one is on its way, the loop will see what was added.
    private static func wakeOnce(_ inbox: inout Inbox, _ queue: EventQueue) {
        guard !inbox.wakePending else { return }
        inbox.wakePending = true
        queue.wake()
    }

    // MARK: Shutdown

    /// Asks the loop to stop and waits until it has: listener closed, in-flight responses
    /// written (up to `shutdownTimeout`), every connection closed. Any number of callers.
    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = inbox.withLock { inbox -> Bool in
                guard !inbox.finished else { return true }
                inbox.waiters.append(continuation)
                inbox.shutdownRequested = true
                queue.wake()
                return false
            }
            if finished { continuation.resume() }
        }
    }

    /// Asks the loop to stop without waiting (see `shutdown()`). Safe from any thread.
    func requestShutdown() {
        inbox.withLock { inbox in
            guard !inbox.finished, !inbox.shutdownRequested else { return }
            inbox.shutdownRequested = true
            queue.wake()
        }
    }

    private func beginShutdown() {
        shuttingDown = true
        shutdownDeadline = monotonicNanoseconds() &+ shutdownTimeout
        closeListener()
        logger.debug("HTTP server shutting down", metadata: ["connections": "\(connections.count)"])
        // Connections without a request in flight go now; the others finish their current
        // request (read the body, respond) and then close, as keep-alive is now off.
        for connection in Array(connections.values) {
            if case .readingHead = connection.phase { close(connection, reason: "server shutting down") }
        }
    }

    private func closeListener() {
        guard listenerFD >= 0 else { return }
        queue.remove(listenerFD)
        closeDescriptor(listenerFD)
        listenerFD = -1
    }

    private func finish() {
        for connection in Array(connections.values) { close(connection, reason: "server stopped") }
        closeListener()
        if spareFD >= 0 { closeDescriptor(spareFD) }
        let (waiters, adopted) = inbox.withLock { inbox in
            inbox.finished = true
            defer { inbox.waiters = []; inbox.adopted = [] }
            return (inbox.waiters, inbox.adopted)
        }
        // Handed over after the last drain: never served.
        for (fd, _) in adopted {
            closeDescriptor(fd)
            openConnections.remove()
        }
        // After `finished` is set no thread calls `wake()`, so the eventfd can go.
        queue.close()
        readBuffer.deallocate()
        logger.debug("HTTP event loop stopped")
        for waiter in waiters { waiter.resume() }
    }
}

/// Open connections across a server's loops, for the connection limit and metrics.
final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)

    var value: Int { count.load(ordering: .relaxed) }

    func add() { count.wrappingAdd(1, ordering: .relaxed) }

    func remove() { count.wrappingSubtract(1, ordering: .relaxed) }
}
