import Foundation
import Glibc
import Locking
import Logging
@testable import RabbitManagement

/// The broker the integration tests run against: `WARREN_TEST_MANAGEMENT_URL`, guest/guest.
enum TestBroker {
    static let url = ProcessInfo.processInfo.environment["WARREN_TEST_MANAGEMENT_URL"]
    static var isAvailable: Bool { url != nil }

    static func configuration(urls: [String]? = nil, password: String = "guest") -> ManagementConfiguration {
        ManagementConfiguration(baseURLs: urls ?? [url!], username: "guest", password: password)
    }

    static func client(urls: [String]? = nil, logger: Logger = Logger(label: "test")) throws -> ManagementClient {
        try ManagementClient(configuration: configuration(urls: urls), logger: logger)
    }
}

/// Unique names so tests can run in parallel and repeatedly against one broker.
func uniqueName(_ prefix: String) -> String {
    "warren-test-\(prefix)-\(UInt32.random(in: .min ... .max))"
}

/// A loopback port on which nothing listens (bound, then released).
func deadURL() -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    precondition(fd >= 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            precondition(bind(fd, $0, length) == 0)
            precondition(getsockname(fd, $0, &length) == 0)
        }
    }
    return "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
}

/// A loopback listener that never accepts: connects succeed (the kernel completes the
/// handshake), requests go out, and no answer ever comes. For timeout, cancel and shutdown tests.
final class BlackHole: Sendable {
    let fd: Int32
    let url: String
    /// Connections that fill the accept queue (see `init(fullBacklog:)`).
    let fillers: [Int32]

    /// With `fullBacklog`, the accept queue is filled first, so the kernel drops further SYNs and
    /// a client's connect hangs until its connect timeout: a dead node, as seen from here.
    init(fullBacklog: Bool = false) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                precondition(bind(fd, $0, length) == 0)
                precondition(getsockname(fd, $0, &length) == 0)
            }
        }
        precondition(listen(fd, fullBacklog ? 0 : 64) == 0)
        self.fd = fd
        url = "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        var fillers: [Int32] = []
        if fullBacklog {
            // Backlog 0 admits one queued connection; a few more make sure the queue is full.
            for _ in 0..<3 {
                let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                var target = address
                _ = withUnsafePointer(to: &target) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                fillers.append(client)
            }
            usleep(50_000)
        }
        self.fillers = fillers
    }

    deinit {
        for filler in fillers { close(filler) }
        close(fd)
    }
}

/// Collects every log record as text, to assert on what is (and is not) logged.
final class LogCapture: Sendable {
    private let lines = PThreadMutex<[String]>([])

    var logger: Logger {
        var logger = Logger(label: "capture") { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    var all: [String] { lines.withLock { $0 } }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            merged.merge(event.metadata ?? [:]) { _, new in new }
            let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(event.level) \(event.message) \(fields)")
        }
    }
}

extension ManagementClient {
    /// Polls until every node runs the vhost: declaring into a new vhost fails until then.
    func awaitVhostRunning(_ name: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await vhost(name)?.isRunning == true { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ManagementError(code: .timeout, summary: "vhost \(name) did not start in 10 s")
    }
}
