import Glibc
import Locking
import Logging

/// An HTTP/1.1 server on POSIX sockets and epoll.
///
/// Threads of its own run the event loops (`configuration.eventLoops`: the first accepts and
/// hands connections out in turn; each reads, parses, writes and times out its own); each
/// request's `respond(to:)` runs as a Task on Swift's concurrency pool, so a slow responder
/// never blocks a loop and a loop never blocks the pool. What a responder can answer without
/// waiting (`respondImmediately(to:)`) is answered on the loop's thread instead.
///
/// Call `shutdown()` before dropping the server: the loop thread keeps running until then.
public final class HTTPServer: Sendable {
    private enum State {
        case idle
        case running([EventLoop], port: Int, openConnections: ConnectionCount)
    }

    private let configuration: HTTPServerConfiguration
    private let responder: any HTTPResponder
    private let logger: Logger
    private let state = PThreadMutex<State>(.idle)

    public init(configuration: HTTPServerConfiguration, responder: any HTTPResponder, logger: Logger) {
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
    }

    /// Binds, listens and starts the event-loop threads. Throws `SocketError` (e.g.
    /// `isAddressInUse`) or `HTTPServerError` (bad host or port, started twice).
    public func start() throws {
        try state.withLock { state in
            guard case .idle = state else { throw HTTPServerError.alreadyStarted }
            Self.raiseDescriptorLimit(toFit: configuration.maxConnections, logger: logger)
            let listener = try Socket.makeListener(host: configuration.host, port: configuration.port)
            let count = ConnectionCount()
            let acceptor: EventLoop
            let port: Int
            do {
                port = try Socket.boundPort(listener)
                acceptor = try EventLoop(
                    listenerFD: listener, openConnections: count, configuration: configuration,
                    responder: responder, logger: logger)
            } catch {
                closeDescriptor(listener)
                throw error
            }
            // The other loops first: the acceptor hands connections only to loops that run. A
            // loop that cannot be made or started is done without (fewer loops, same service).
            var loops = [acceptor]
            for _ in 1..<max(1, configuration.eventLoops) {
                do {
                    let loop = try EventLoop(
                        listenerFD: -1, openConnections: count, configuration: configuration,
                        responder: responder, logger: logger)
                    do {
                        try LoopThread.start { loop.run() }
                        loops.append(loop)
                    } catch {
                        loop.discard()
                        throw error
                    }
                } catch {
                    logger.warning("HTTP server runs with fewer event loops", metadata: ["error": "\(error)"])
                    break
                }
            }
            acceptor.peers = Array(loops.dropFirst())
            do {
                try LoopThread.start { acceptor.run() }
            } catch {
                acceptor.discard()
                for loop in loops.dropFirst() { loop.requestShutdown() }
                throw error
            }
            state = .running(loops, port: port, openConnections: count)
            logger.info("HTTP server listening", metadata: [
                "host": "\(configuration.host)", "port": "\(port)", "event_loops": "\(loops.count)",
            ])
        }
    }

    /// The bound port once started (the kernel's pick for port 0); the configured one before.
    public var port: Int {
        state.withLock { state in
            switch state {
            case .idle: configuration.port
            case .running(_, let port, _): port
            }
        }
    }

    /// Connections open right now (0 before start and after shutdown).
    public var openConnections: Int {
        state.withLock { state in
            if case .running(_, _, let count) = state { return count.value }
            return 0
        }
    }

    /// Stops accepting, lets in-flight requests finish and their responses be written (up to
    /// `shutdownTimeout`), closes every connection, stops the loop thread, then returns.
    /// Idempotent; concurrent callers all return once the server has stopped.
    public func shutdown() async {
        let loops: [EventLoop] = state.withLock { state in
            if case .running(let loops, _, _) = state { return loops }
            return []
        }
        // All at once: each drains its own in-flight requests within the same timeout.
        for loop in loops { loop.requestShutdown() }
        for loop in loops { await loop.shutdown() }
    }

    /// Each connection is a descriptor; a soft RLIMIT_NOFILE of 1024 (a common default) would
    /// make accept fail with EMFILE long before `maxConnections`. Raise the soft limit toward
    /// the hard one if needed; never lower it.
    private static func raiseDescriptorLimit(toFit connections: Int, logger: Logger) {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0 else { return }
        let wanted = rlim_t(max(0, connections) + 64)
        guard limit.rlim_cur < wanted else { return }
        let target = min(wanted, limit.rlim_max)
        guard target > limit.rlim_cur else { return }
        limit.rlim_cur = target
        if setrlimit(resource, &limit) != 0 {
            logger.warning("could not raise the open-file limit", metadata: ["wanted": "\(wanted)"])
        }
    }
}
