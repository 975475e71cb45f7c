import Foundation
import Logging
import Testing
@testable import RabbitManagement

/// Certificate checks against `openssl s_server` with a throwaway self-signed certificate.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")), .serialized)
struct TLSTests {
    /// A TLS server on loopback whose certificate names localhost and 127.0.0.1. `-www` answers
    /// any request with an HTML status page: enough to tell "TLS worked" from "TLS failed".
    final class TLSServer {
        let directory: String
        let certificate: String
        let port: Int
        let pid: pid_t

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("warren-tls-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            certificate = directory + "/cert.pem"
            let key = directory + "/key.pem"
            let request = try Self.spawn([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", certificate,
            ])
            var status: Int32 = 0
            waitpid(request, &status, 0)
            guard status == 0 else { throw CocoaError(.fileWriteUnknown) }
            port = Int(deadURL().split(separator: ":").last!)!
            pid = try Self.spawn(["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificate, "-key", key, "-www", "-quiet"])
            try waitUntilListening()
        }

        deinit {
            // SIGKILL: a child inherits the test runner's signal mask, in which SIGTERM may be blocked.
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            try? FileManager.default.removeItem(atPath: directory)
        }

        private func waitUntilListening() throws {
            for _ in 0..<100 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                address.sin_port = UInt16(port).bigEndian
                let rc = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                close(fd)
                if rc == 0 { return }
                usleep(50_000)
            }
            throw CocoaError(.fileReadUnknown)
        }

        /// posix_spawn of openssl with an empty signal mask and default handlers, and
        /// stdin/stdout/stderr on /dev/null (Foundation's Process passes on the runner's mask).
        private static func spawn(_ arguments: [String]) throws -> pid_t {
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var none = sigset_t()
            sigemptyset(&none)
            posix_spawnattr_setsigmask(&attributes, &none)
            var all = sigset_t()
            sigfillset(&all)
            posix_spawnattr_setsigdefault(&attributes, &all)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            let argv = (["/usr/bin/openssl"] + arguments).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, "/usr/bin/openssl", &actions, &attributes, argv, environ)
            guard rc == 0 else { throw CocoaError(.executableLoad) }
            return pid
        }
    }

    @Test func untrustedCertificateIsATLSError() async throws {
        let server = try TLSServer()
        let client = try ManagementClient(
            configuration: ManagementConfiguration(baseURLs: ["https://127.0.0.1:\(server.port)"], username: "u", password: "p"),
            logger: Logger(label: "test"))
        defer { client.shutdown() }
        await #expect {
            _ = try await client.overview()
        } throws: { error in
            guard let error = error as? ManagementError else { return false }
            return error.code == .tls && error.summary.hasPrefix("TLS verification failed")
        }
    }

    @Test func trustedWithCAFileGetsThrough() async throws {
        let server = try TLSServer()
        var configuration = ManagementConfiguration(baseURLs: ["https://localhost:\(server.port)"], username: "u", password: "p")
        configuration.caFile = server.certificate
        let client = try ManagementClient(configuration: configuration, logger: Logger(label: "test"))
        defer { client.shutdown() }
        // TLS succeeds; the HTML status page is then not the JSON an overview needs.
        await #expect {
            _ = try await client.overview()
        } throws: { error in
            (error as? ManagementError)?.code == .invalidResponse
        }
    }
}
