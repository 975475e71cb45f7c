import Foundation
import Glibc
import Logging
import Synchronization
import Testing
@testable import RabbitManagement

/// `countVhosts` on brokers whose paginated vhost listing works (3.x) and fails (4.0.5, 4.3.6),
/// against a server of our own that answers as those brokers do: the live brokers of the test
/// matrix cover the real thing, this covers the choice of path and that it is remembered.
@Suite struct VhostCountTests {
    static let vhosts = #"[{"name":"/"},{"name":"warren.a.x"},{"name":"warren.a.y"},{"name":"warren.ab"},{"name":"warren.b.x"}]"#

    private func client(_ server: CannedServer) throws -> ManagementClient {
        try ManagementClient(
            configuration: ManagementConfiguration(baseURLs: [server.url], username: "guest", password: "guest"),
            logger: Logger(label: "test"))
    }

    /// 3.x: one paged request, the broker counts.
    @Test func pagedListingIsUsedWhereItWorks() async throws {
        let server = try CannedServer { target in
            target.hasPrefix("/api/vhosts?page=1") ? (200, #"{"filtered_count":2,"items":[{"name":"warren.a.x"}]}"#) : (404, "{}")
        }
        let client = try client(server)
        defer { client.shutdown(); server.stop() }
        #expect(try await client.countVhosts(prefix: "warren.a.") == 2)
        #expect(server.targets.count == 1)
    }

    /// 4.x: the paged listing's 500 (and its one retry) and the version are seen once; later
    /// counts use the full listing at once.
    @Test func fullListingOn4xAfterOnePagedFailure() async throws {
        let server = try CannedServer { target in
            if target.hasPrefix("/api/vhosts?page=") { return (500, "") }
            if target.hasPrefix("/api/overview") { return (200, #"{"rabbitmq_version":"4.0.5"}"#) }
            if target.hasPrefix("/api/vhosts?columns=name") { return (200, Self.vhosts) }
            return (404, "{}")
        }
        let client = try client(server)
        defer { client.shutdown(); server.stop() }
        #expect(try await client.countVhosts(prefix: "warren.a.") == 2)
        #expect(try await client.countVhosts(prefix: "warren.") == 4)
        #expect(try await client.countVhosts(prefix: "warren.c.") == 0)
        let paged = server.targets.filter { $0.hasPrefix("/api/vhosts?page=") }
        #expect(paged.count == 2)  // the first call and its retry, never again
        #expect(server.targets.filter { $0.hasPrefix("/api/overview") }.count == 1)
    }

    /// A 500 from a 3.x broker stays an error: it is no reason to list every vhost from now on.
    @Test func a500From3xIsAnError() async throws {
        let server = try CannedServer { target in
            if target.hasPrefix("/api/vhosts?page=") { return (500, "") }
            if target.hasPrefix("/api/overview") { return (200, #"{"rabbitmq_version":"3.10.8"}"#) }
            return (200, Self.vhosts)
        }
        let client = try client(server)
        defer { client.shutdown(); server.stop() }
        for _ in 0..<2 {
            await #expect {
                _ = try await client.countVhosts(prefix: "warren.a.")
            } throws: { error in
                (error as? ManagementError).map { $0.code == .brokerFailure && $0.status == 500 } ?? false
            }
        }
        #expect(!server.targets.contains { $0.hasPrefix("/api/vhosts?columns") })
    }

    @Test func majorVersion() {
        #expect(ManagementClient.majorVersion("4.0.5") == 4)
        #expect(ManagementClient.majorVersion("3.10.8") == 3)
        #expect(ManagementClient.majorVersion("10.1") == 10)
        #expect(ManagementClient.majorVersion("beta") == nil)
    }
}

/// A loopback HTTP/1.1 server on a thread of its own: answers each request with
/// `answer(target)` (status, JSON body) and closes the connection; records the targets.
/// `stop()` it when done.
final class CannedServer: Sendable {
    let url: String
    private let fd: Int32
    private let recorded = Mutex<[String]>([])
    private let answer: @Sendable (String) -> (Int, String)

    var targets: [String] { recorded.withLock { $0 } }

    init(answer: @escaping @Sendable (String) -> (Int, String)) throws {
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
        precondition(listen(fd, 16) == 0)
        self.fd = fd
        self.answer = answer
        url = "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// Wakes the blocked accept, which then fails and ends the thread (which holds `self`).
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    deinit { close(fd) }

    private func serve() {
        while true {
            let connection = accept(fd, nil, nil)
            if connection < 0 { return }
            handle(connection)
            close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !request.ends(with: Array("\r\n\r\n".utf8)) {
            let n = read(connection, &buffer, buffer.count)
            if n <= 0 { return }
            request += buffer[0..<n]
        }
        let line = String(decoding: request.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count == 3 else { return }
        let target = String(parts[1])
        recorded.withLock { $0.append(target) }
        let (status, body) = answer(target)
        let response = "HTTP/1.1 \(status) X\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n" + body
        _ = Array(response.utf8).withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
    }
}

extension Array where Element == UInt8 {
    fileprivate func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
