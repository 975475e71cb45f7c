import Glibc
@testable import HTTPServer
import Locking
import Logging

let quietLogger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

/// A request as the server's responder got it.
struct SeenRequest: Sendable {
    var method: String
    var path: String
    var query: String?
    var headers: HTTPHeaders
    var body: [UInt8]

    func header(_ name: String) -> String? { headers[name] }
    func hasHeader(_ name: String) -> Bool { headers.contains(name) }
}

/// The project's own HTTP server on 127.0.0.1 and a free port, answering:
/// - `/big?bytes=N`: 200 with a body of N bytes;
/// - `/many-headers?count=N`: 200 with N header fields of about 100 bytes each;
/// - anything else: 201 with the request's body as its body, `Content-Type:
///   application/problem+json` and `Location: /v1/things/42`.
/// Every request is recorded (`seen`).
final class EchoServer: Sendable {
    private let server: HTTPServer
    private let responder = Responder()

    init() throws {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.eventLoops = 1
        server = HTTPServer(configuration: configuration, responder: responder, logger: quietLogger)
        try server.start()
    }

    var url: String { "http://127.0.0.1:\(server.port)" }
    var seen: [SeenRequest] { responder.seen.withLock { $0 } }

    func shutdown() async { await server.shutdown() }

    private final class Responder: HTTPResponder {
        let seen = PThreadMutex<[SeenRequest]>([])

        func respond(to request: HTTPRequest) async -> HTTPResponse {
            seen.withLock {
                $0.append(SeenRequest(method: request.method, path: request.path, query: request.query,
                                      headers: request.headers, body: request.body))
            }
            let number = Int(request.query?.split(separator: "=").last ?? "") ?? 0
            switch request.path {
            case "/big":
                return HTTPResponse(status: 200, headers: ["Content-Type": "text/plain"],
                                    body: [UInt8](repeating: UInt8(ascii: "x"), count: number))
            case "/many-headers":
                var headers = HTTPHeaders()
                for index in 0..<number { headers.add("X-Filler-\(index)", String(repeating: "f", count: 100)) }
                return HTTPResponse(status: 200, headers: headers, body: Array("ok".utf8))
            default:
                return HTTPResponse(
                    status: 201,
                    headers: ["Content-Type": "application/problem+json", "Location": "/v1/things/42"],
                    body: request.body)
            }
        }
    }
}

/// Runs `body` against a fresh `EchoServer`, which is shut down on every path.
func withEchoServer<T>(_ body: (EchoServer) async throws -> T) async throws -> T {
    let server = try EchoServer()
    do {
        let result = try await body(server)
        await server.shutdown()
        return result
    } catch {
        await server.shutdown()
        throw error
    }
}

/// A listener that answers the first connection with fixed bytes, whatever was asked, then
/// closes it: for answers the project's server never gives (interim responses with fields,
/// folded fields, trailers).
final class OneShotServer: Sendable {
    let port: Int
    private let fd: Int32

    init(answer: String) throws {
        let (fd, port) = try loopbackSocket()
        guard listen(fd, 4) == 0 else {
            close(fd)
            throw SupportError("listen: errno \(errno)")
        }
        self.fd = fd
        self.port = port
        let bytes = Array(answer.utf8)
        try LoopThread.start {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            defer { close(client) }
            // Bounds a test whose client never sends; it never paces one that does.
            var timeout = timeval(tv_sec: 60, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while !received.containsHeadEnd {
                let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return }
                received += chunk[..<n]
            }
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { send(client, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { return }
                offset += n
            }
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    deinit {
        // Wakes the thread if it still waits in accept (no client came).
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

/// A loopback port that refuses connections: bound, never listening. Holding the socket keeps
/// the port from being handed to anyone else while a test uses it.
final class RefusingPort: Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        (fd, port) = try loopbackSocket()
    }

    var url: String { "http://127.0.0.1:\(port)" }

    deinit { close(fd) }
}

/// A listener that never accepts: connections complete (the kernel does the handshake) and
/// requests go out, but no answer ever comes. For cancellation.
final class SilentServer: Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        (fd, port) = try loopbackSocket()
        guard listen(fd, 16) == 0 else {
            close(fd)
            throw SupportError("listen: errno \(errno)")
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    deinit { close(fd) }
}

struct SupportError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A TCP socket bound to 127.0.0.1 and a port the kernel picked.
private func loopbackSocket() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SupportError("socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard bound else {
        let error = errno
        close(fd)
        throw SupportError("bind: errno \(error)")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

extension [UInt8] {
    fileprivate var containsHeadEnd: Bool {
        guard count >= 4 else { return false }
        return (0...(count - 4)).contains { self[$0] == 13 && self[$0 + 1] == 10 && self[$0 + 2] == 13 && self[$0 + 3] == 10 }
    }
}
