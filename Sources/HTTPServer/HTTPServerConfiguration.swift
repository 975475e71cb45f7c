import Glibc

/// Limits and timeouts of one `HTTPServer`. Every limit is answered with a problem response
/// and a closed connection, never with a hang.
public struct HTTPServerConfiguration: Sendable {
    /// IPv4 literal such as "127.0.0.1" or "0.0.0.0"; an IPv6 literal such as "::1" also works.
    public var host: String = "127.0.0.1"
    /// 0 picks a free port; read it back from `HTTPServer.port` after `start()`.
    public var port: Int = 8080
    /// Longest request line (without CRLF); over it -> 414.
    public var maxRequestLineBytes = 8 * 1024
    /// Largest header section (the field lines after the request line); over it -> 431.
    public var maxHeaderBytes = 32 * 1024
    /// Largest Content-Length accepted; over it -> 413, answered without reading the body.
    public var maxBodyBytes = 1 << 20
    /// Open connections; one more is accepted, answered with a short 503 and closed at once.
    public var maxConnections = 4096
    /// The whole head must arrive within this, counted from accept or from the first byte of a
    /// request on a kept-alive connection (slowloris) -> 408 + close.
    public var headerTimeout: Duration = .seconds(10)
    /// The body must arrive within this, counted from the end of the head -> 408 + close.
    public var bodyTimeout: Duration = .seconds(30)
    /// A kept-alive connection with no request in flight is closed silently after this. Also
    /// bounds how long a response may take to drain to a client that stopped reading.
    public var idleTimeout: Duration = .seconds(60)
    /// How long `shutdown()` waits for in-flight requests before closing them anyway.
    public var shutdownTimeout: Duration = .seconds(30)
    /// Event-loop threads. The first accepts and hands connections out in turn; each loop then
    /// reads, parses and writes its own. One loop saturated one core of a 2-core machine while
    /// the other had room (BENCHMARKS.md). Defaults to the online CPUs, at most 4.
    public var eventLoops = HTTPServerConfiguration.onlineCPUs(max: 4)

    /// `sysconf(_SC_NPROCESSORS_ONLN)`, 1 to `max`.
    public static func onlineCPUs(max limit: Int) -> Int {
        let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return min(Swift.max(1, online), Swift.max(1, limit))
    }

    public init() {}
}
