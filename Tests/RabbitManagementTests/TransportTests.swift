import Foundation
import Logging
import Testing
@testable import RabbitManagement

/// The client against sockets of our own: no broker needed.
@Suite struct TransportTests {
    private func client(
        _ urls: [String], timeout: Duration = .seconds(10), connectTimeout: Duration? = nil,
        logger: Logger = Logger(label: "test")
    ) throws -> ManagementClient {
        var configuration = ManagementConfiguration(baseURLs: urls, username: "guest", password: "secret-pw")
        configuration.requestTimeout = timeout
        if let connectTimeout { configuration.connectTimeout = connectTimeout }
        return try ManagementClient(configuration: configuration, logger: logger)
    }

    /// A refused connection is reported as such at once, not after a timeout. The timeouts are
    /// long so that waiting for either of them cannot pass for a refusal on a busy machine (the
    /// old bound of 3 s, the default connect timeout, was missed by a loaded one).
    @Test func unreachableOnlyFailsFast() async throws {
        let url = deadURL()
        let client = try client([url], timeout: .seconds(120), connectTimeout: .seconds(120))
        defer { client.shutdown() }
        let clock = ContinuousClock()
        let started = clock.now
        do {
            _ = try await client.overview()
            Issue.record("expected a failure")
        } catch let error as ManagementError {
            #expect(error.code == .unreachable)
            #expect(error.summary == "management API unreachable at \(url) (connection refused)")
            #expect(error.status == nil)
        }
        // Not the timeouts' doing: they would have taken 120 s. Half of that is a margin no
        // busy machine needs.
        #expect(clock.now - started < .seconds(60))
    }

    @Test func allNodesDownNamesThemAll() async throws {
        let client = try client([deadURL(), deadURL()])
        defer { client.shutdown() }
        await #expect {
            _ = try await client.whoami()
        } throws: { error in
            guard let error = error as? ManagementError else { return false }
            return error.code == .unreachable && error.summary.hasPrefix("management API unreachable at all 2 nodes")
        }
    }

    @Test func silentServerTimesOut() async throws {
        let hole = BlackHole()
        let client = try client([hole.url], timeout: .milliseconds(300))
        defer { client.shutdown() }
        let clock = ContinuousClock()
        let started = clock.now
        await #expect {
            _ = try await client.overview()
        } throws: { error in
            (error as? ManagementError)?.code == .timeout
        }
        // Ended by the call's own 300 ms budget, not before it. The upper bound is loose on
        // purpose: a busy machine may take seconds to get there (5 s was a bound on its speed),
        // and a budget not applied at all hangs rather than ends late; it catches one applied
        // in the wrong unit.
        let elapsed = clock.now - started
        #expect(elapsed >= .milliseconds(250))
        #expect(elapsed < .seconds(30))
    }

    @Test func shutdownFailsPendingAndLaterCalls() async throws {
        let hole = BlackHole()
        let client = try client([hole.url])
        let pending = Task { try await client.overview() }
        try await Task.sleep(for: .milliseconds(100))
        client.shutdown()
        await #expect {
            _ = try await pending.value
        } throws: { error in
            (error as? ManagementError)?.code == .shutdown
        }
        await #expect {
            _ = try await client.overview()
        } throws: { error in
            (error as? ManagementError)?.code == .shutdown
        }
        client.shutdown()  // idempotent
    }

    @Test func cancellationEndsTheCall() async throws {
        let hole = BlackHole()
        let client = try client([hole.url])
        defer { client.shutdown() }
        let pending = Task { try await client.overview() }
        try await Task.sleep(for: .milliseconds(100))
        pending.cancel()
        await #expect(throws: CancellationError.self) { _ = try await pending.value }
    }

    @Test func badSegmentIsNeverSent() async throws {
        let capture = LogCapture()
        let client = try client([deadURL()], logger: capture.logger)
        defer { client.shutdown() }
        for name in ["", ".", ".."] {
            await #expect {
                _ = try await client.vhost(name)
            } throws: { error in
                (error as? ManagementError)?.code == .invalidRequest
            }
        }
        #expect(capture.all.isEmpty)  // nothing was attempted
    }

    @Test func commaInTagRejected() async throws {
        let client = try client([deadURL()])
        defer { client.shutdown() }
        await #expect {
            try await client.putVhost("v", description: "", tags: ["a,b"], defaultQueueType: nil)
        } throws: { error in
            (error as? ManagementError)?.code == .invalidRequest
        }
    }

    @Test func releasingTheClientStopsItsThread() async throws {
        // No shutdown(): deinit of the last reference must stop the loop without hanging.
        for _ in 0..<20 {
            let client = try client([deadURL()])
            _ = try? await client.overview()
        }
    }
}
