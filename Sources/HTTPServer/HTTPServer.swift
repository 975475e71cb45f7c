import Glibc
import Logging
import Synchronization

/// An HTTP/1.1 server on POSIX sockets and epoll.
///
/// One thread of its own runs the event loop (accept, read, parse, write, timeouts); each
/// request's `respond(to:)` runs as a Task on Swift's concurrency pool, so a slow responder
/// never blocks the loop and the loop never blocks the pool.
///
/// Call `shutdown()` before dropping the server: the loop thread keeps running until then.
public final class HTTPServer: Sendable {
    private enum State {
        case idle
        case running(EventLoop, port: Int)
    }

    private let configuration: HTTPServerConfiguration
    private let responder: any HTTPResponder
    private let logger: Logger
    private let state = Mutex<State>(.idle)

    public init(configuration: HTTPServerConfiguration, responder: any HTTPResponder, logger: Logger) {
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
    }

    /// Binds, listens and starts the event-loop thread. Throws `SocketError` (e.g.
    /// `isAddressInUse`) or `HTTPServerError` (bad host or port, started twice).
    public func start() throws {
        try state.withLock { state in
            guard case .idle = state else { throw HTTPServerError.alreadyStarted }
            Self.raiseDescriptorLimit(toFit: configuration.maxConnections, logger: logger)
            let listener = try Socket.makeListener(host: configuration.host, port: configuration.port)
            let loop: EventLoop
            let port: Int
            do {
                port = try Socket.boundPort(listener)
                loop = try EventLoop(listenerFD: listener, configuration: configuration, responder: responder, logger: logger)
            } catch {
                closeDescriptor(listener)
                throw error
            }
            do {
                try LoopThread.start { loop.run() }
            } catch {
                loop.discard()
                throw error
            }
            state = .running(loop, port: port)
            logger.info("HTTP server listening", metadata: ["host": "\(configuration.host)", "port": "\(port)"])
        }
    }

    /// The bound port once started (the kernel's pick for port 0); the configured one before.
    public var port: Int {
        state.withLock { state in
            switch state {
            case .idle: configuration.port
            case .running(_, let port): port
            }
        }
    }

    /// Connections open right now (0 before start and after shutdown).
    public var openConnections: Int {
        state.withLock { state in
            if case .running(let loop, _) = state { return loop.openConnections.load(ordering: .relaxed) }
            return 0
        }
    }

    /// Stops accepting, lets in-flight requests finish and their responses be written (up to
    /// `shutdownTimeout`), closes every connection, stops the loop thread, then returns.
    /// Idempotent; concurrent callers all return once the server has stopped.
    public func shutdown() async {
        let loop: EventLoop? = state.withLock { state in
            if case .running(let loop, _) = state { return loop }
            return nil
        }
        await loop?.shutdown()
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
