import Glibc
@testable import HTTPServer
import Locking
import Logging

/// Runs blocking test I/O on a thread of its own, so a test waiting in recv() never occupies
/// one of the (two, on CI) threads of the cooperative pool that the server's responders need.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        do {
            try LoopThread.start { continuation.resume(with: Result { try body() }) }
        } catch {
            continuation.resume(throwing: error)
        }
    }
}

struct ClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A response as the test client read it off the wire.
struct WireResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A raw, blocking POSIX TCP client (no URLSession): exactly the bytes the test writes go out.
/// Every read has a receive timeout, so a server bug fails the test instead of hanging it. The
/// timeout only bounds what must arrive eventually, never how fast: 3 s ran out on a loaded
/// 2-core machine with the whole package's tests running side by side.
final class RawClient: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, receiveTimeout: Duration = .seconds(60)) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: Int(receiveTimeout.components.seconds),
                              tv_usec: Int(receiveTimeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let error = errno
            Glibc.close(fd)
            throw ClientError("connect: errno \(error)")
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError("send: errno \(errno)") }
            offset += n
        }
    }

    /// Reads more bytes; false at EOF. Throws on timeout or error.
    @discardableResult
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw ClientError(errno == EAGAIN ? "recv timed out" : "recv: errno \(errno)") }
        buffer.append(contentsOf: chunk[..<n])
        return n > 0
    }

    /// Reads one response framed by Content-Length (`bodyless` for a HEAD request).
    func readResponse(bodyless: Bool = false) throws -> WireResponse {
        var headEnd: Int?
        while true {
            headEnd = find([13, 10, 13, 10])
            if headEnd != nil { break }
            guard try fill() else { throw ClientError("EOF before a response head; got \(String(decoding: buffer, as: UTF8.self).debugDescription)") }
        }
        let head = String(decoding: buffer[..<headEnd!], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else {
            throw ClientError("bad status line in \(head.debugDescription)")
        }
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw ClientError("bad header line \(line.debugDescription)") }
            headers.add(String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: " "))
        }
        buffer.removeFirst(headEnd! + 4)
        let length = bodyless ? 0 : Int(headers["Content-Length"] ?? "0") ?? 0
        while buffer.count < length {
            guard try fill() else { throw ClientError("EOF inside a response body") }
        }
        let body = Array(buffer[..<length])
        buffer.removeFirst(length)
        return WireResponse(status: status, headers: headers, body: body)
    }

    /// True if the server closes the connection (EOF) with no further bytes.
    func readsEOF() throws -> Bool {
        guard buffer.isEmpty else { return false }
        return try !fill() && buffer.isEmpty
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for i in 0...(buffer.count - pattern.count) where buffer[i..<(i + pattern.count)].elementsEqual(pattern) {
            return i
        }
        return nil
    }
}

extension String {
    func components(separatedBy separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }

    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}

/// Echoes what it received; "/slow?ms=N" sleeps first.
struct EchoResponder: HTTPResponder {
    func respond(to request: HTTPRequest) async -> HTTPResponse {
        if request.path == "/slow" {
            let ms = Int(request.query?.split(separator: "=").last ?? "") ?? 300
            try? await Task.sleep(for: .milliseconds(ms))
        }
        let text = "\(request.method) \(request.path) query=\(request.query ?? "-") body=\(String(decoding: request.body, as: UTF8.self))"
        return HTTPResponse(status: 200, headers: ["Content-Type": "text/plain", "Content-Length": "999"], body: Array(text.utf8))
    }
}

/// Holds every request until `release()`, then answers "released METHOD PATH".
final class GatedResponder: HTTPResponder {
    private struct State {
        var arrivals = 0
        var released = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let state = PThreadMutex(State())

    /// A request has reached the responder.
    var arrived: Bool { arrivals > 0 }

    /// How many requests have reached the responder.
    var arrivals: Int { state.withLock { $0.arrivals } }

    func release() {
        let waiting = state.withLock { state in
            state.released = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let go = state.withLock { state in
                state.arrivals += 1
                if state.released { return true }
                state.waiting.append(continuation)
                return false
            }
            if go { continuation.resume() }
        }
        return HTTPResponse(status: 200, headers: ["Content-Type": "text/plain"], body: Array("released \(request.method) \(request.path)".utf8))
    }
}

/// A started server on 127.0.0.1 and a free port.
func startServer(
    responder: any HTTPResponder = EchoResponder(), _ configure: (inout HTTPServerConfiguration) -> Void = { _ in }
) throws -> HTTPServer {
    var configuration = HTTPServerConfiguration()
    configuration.port = 0
    configure(&configuration)
    let server = HTTPServer(configuration: configuration, responder: responder, logger: quietLogger)
    try server.start()
    return server
}

/// Polls until `condition` holds, for at most `timeout`: a wait for what must happen, so long
/// that only a broken server runs it out, however busy the machine. False if it ran out.
func eventually(timeout: Duration = .seconds(30), _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while !condition() {
        guard clock.now < deadline else { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}

func elapsed(since start: UInt64) -> Duration {
    .nanoseconds(Int64(monotonicNanoseconds() - start))
}

let quietLogger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
