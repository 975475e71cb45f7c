import CCurl
import CurlHTTP
import Glibc
import Logging
import Synchronization
import WireFormat

/// A typed client for the RabbitMQ management HTTP API, over libcurl.
///
/// All calls share one libcurl multi handle on one thread of its own (`CurlMultiLoop`), so any
/// number of concurrent calls cost no cooperative-pool threads and reuse keep-alive connections.
/// Error statuses throw `ManagementError`; typed getters and deletes turn 404 into nil/false.
///
/// `withLogger(_:)` returns a client that shares the connection and thread but logs to another
/// logger (e.g. one carrying a request ID).
public final class ManagementClient: Sendable {
    let core: Core
    public let logger: Logger

    public init(configuration: ManagementConfiguration, logger: Logger) throws {
        self.core = try Core(configuration: configuration, logger: logger)
        self.logger = logger
    }

    private init(core: Core, logger: Logger) {
        self.core = core
        self.logger = logger
    }

    /// Same connections and thread, other logger.
    public func withLogger(_ logger: Logger) -> ManagementClient {
        ManagementClient(core: core, logger: logger)
    }

    /// Stops the libcurl thread. Calls in flight and later calls fail with `.shutdown`. Shared by
    /// all `withLogger` copies. Also happens when the last copy is released.
    public func shutdown() {
        core.loop.shutdown()
    }

    /// Raw escape hatch for tests. `segments` follow `/api` and are each percent-encoded here;
    /// any non-2xx answer throws.
    func call(
        _ method: String, _ segments: [String], query: [(String, String)] = [], body: JSONValue? = nil
    ) async throws -> ManagementResponse {
        try await send(method, segments, query: query, body: body, operation: "\(method) \(segments.first ?? "api")")
    }

    /// GET that maps 404 to nil.
    func getIfPresent(_ segments: [String], query: [(String, String)] = [], operation: String) async throws -> JSONValue? {
        do {
            return try await get(segments, query: query, operation: operation)
        } catch let error as ManagementError where error.code == .notFound {
            return nil
        }
    }

    /// A GET is tried a second time after a 5xx: RabbitMQ 3.10's listings fail with an empty
    /// 500 now and then while objects are deleted under them (seen in about 0.1% of user and
    /// vhost listings under concurrent deletes), and a read is safe to repeat.
    func get(_ segments: [String], query: [(String, String)] = [], operation: String) async throws -> JSONValue {
        try await getResponse(segments, query: query, operation: operation).json()
    }

    /// `get`'s answer before any decoding (for listings read element by element, `getList`).
    func getResponse(_ segments: [String], query: [(String, String)] = [], operation: String) async throws -> ManagementResponse {
        do {
            return try await send("GET", segments, query: query, body: nil, operation: operation)
        } catch let error as ManagementError where error.code == .brokerFailure {
            try await Task.sleep(for: .milliseconds(20))
            return try await send("GET", segments, query: query, body: nil, operation: operation)
        }
    }

    /// DELETE that maps 404 to false.
    ///
    /// Two DELETEs of one object at the same moment: on RabbitMQ 3.10 the loser answers 500
    /// now and then instead of 404 (about one pair in ten for users, seen with two rotations
    /// revoking the same user). So after a 5xx the object is looked up: gone means someone
    /// else deleted it (false). Still there, the error stands: the DELETE is not sent again
    /// here, since by now the name may be another object's (the caller knows whether it is).
    func deleteIfPresent(_ segments: [String], operation: String) async throws -> Bool {
        do {
            return try await deleteOnce(segments, operation: operation)
        } catch let error as ManagementError where error.code == .brokerFailure {
            guard try await getIfPresent(segments, operation: "GET after a failed \(operation)") != nil else {
                return false
            }
            throw error
        }
    }

    private func deleteOnce(_ segments: [String], operation: String) async throws -> Bool {
        do {
            _ = try await send("DELETE", segments, query: [], body: nil, operation: operation)
            return true
        } catch let error as ManagementError where error.code == .notFound {
            return false
        }
    }

    // MARK: - one call, with failover

    func send(
        _ method: String, _ segments: [String], query: [(String, String)], body: JSONValue?, operation: String
    ) async throws -> ManagementResponse {
        guard !method.isEmpty, method.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
            throw ManagementError(code: .invalidRequest, summary: "invalid HTTP method for the management API")
        }
        let path = try PathSegment.path(segments, query: query)
        let bodyBytes: [UInt8]?
        do {
            bodyBytes = try body?.encodedBytes()
        } catch {
            throw ManagementError(code: .invalidRequest, summary: "request body for \(operation) is not valid JSON")
        }
        try Task.checkCancellation()

        let configuration = core.configuration
        let urls = core.baseURLs
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started + configuration.requestTimeout
        let first = core.preferredIndex.load(ordering: .relaxed)
        var failures: [(url: String, error: ManagementError)] = []

        for attempt in 0..<urls.count {
            let index = (first + attempt) % urls.count
            let base = urls[index]
            let remaining = deadline - clock.now
            guard remaining > .zero else { break }
            let request = TransferRequest(
                url: base + path, method: method,
                // No "Accept: application/json": 3.10 answers 406 to it on vhost-limits and user-limits.
                headerLines: bodyBytes == nil ? [] : ["Content-Type: application/json"],
                body: bodyBytes,
                credentials: .init(username: configuration.username, password: configuration.password),
                timeoutMilliseconds: max(1, remaining.wholeMilliseconds),
                connectTimeoutMilliseconds: max(1, min(configuration.connectTimeout, remaining).wholeMilliseconds),
                caFile: configuration.caFile, clientCertFile: configuration.clientCertFile,
                clientKeyFile: configuration.clientKeyFile, maxResponseBytes: configuration.maxResponseBytes)
            let attemptStarted = clock.now
            let outcome: TransferOutcome
            do {
                outcome = try await core.loop.perform(request)
            } catch {
                throw Self.setupError(error)
            }
            let elapsed = (clock.now - attemptStarted).wholeMilliseconds

            let result: TransferResult
            switch outcome {
            case .cancelled:
                logger.debug("management call cancelled", metadata: ["method": "\(method)", "path": "\(path)", "node": "\(base)"])
                throw CancellationError()
            case .shutdown:
                throw ManagementError(code: .shutdown, summary: "management client was shut down")
            case .finished(let finished):
                result = finished
            }

            if result.curlCode == CURLE_OK {
                core.preferredIndex.store(index, ordering: .relaxed)
                logger.debug("management call", metadata: [
                    "method": "\(method)", "path": "\(path)", "node": "\(base)",
                    "status": "\(result.status)", "duration_ms": "\(elapsed)",
                ])
                guard (200..<300).contains(result.status) else {
                    throw ManagementError.http(status: result.status, operation: operation, body: result.body)
                }
                return ManagementResponse(status: result.status, body: result.body)
            }

            let error = Self.transportError(result, base: base, operation: operation, elapsed: elapsed)
            logger.debug("management call failed", metadata: [
                "method": "\(method)", "path": "\(path)", "node": "\(base)", "error": "\(error.code)",
                "curl": "\(result.curlDetail)", "duration_ms": "\(elapsed)",
            ])
            guard Self.isSafeToSendElsewhere(result), attempt + 1 < urls.count else {
                throw failures.isEmpty ? error : Self.allNodesFailed(failures + [(base, error)])
            }
            failures.append((base, error))
            logger.notice("management node unreachable, trying the next one", metadata: [
                "node": "\(base)", "error": "\(error.summary)",
            ])
        }
        // The budget ran out between attempts.
        if failures.isEmpty {
            throw ManagementError(code: .timeout, summary: "management API did not answer \(operation) in time")
        }
        throw Self.allNodesFailed(failures)
    }

    /// A transfer libcurl would not set up. Running out of handles is as good as unreachable to
    /// the caller; a rejected option is this request's fault.
    private static func setupError(_ error: CurlError) -> ManagementError {
        switch error.kind {
        case .handle: ManagementError(code: .unreachable, summary: error.summary)
        case .option: ManagementError(code: .invalidRequest, summary: error.summary)
        default: ManagementError(code: .invalidConfiguration, summary: error.summary)
        }
    }

    /// Failover only when the request certainly never reached a broker: nothing was connected,
    /// or nothing was sent. Everything we send is idempotent, but a half-done call should still
    /// surface as an error rather than be silently repeated on another node.
    private static func isSafeToSendElsewhere(_ result: TransferResult) -> Bool {
        switch result.curlCode {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_SSL_CONNECT_ERROR:
            return true
        case CURLE_OPERATION_TIMEDOUT:
            return result.requestBytes == 0
        default:
            return false
        }
    }

    private static func allNodesFailed(_ failures: [(url: String, error: ManagementError)]) -> ManagementError {
        let last = failures[failures.count - 1].error
        let code: ManagementError.Code = failures.allSatisfy { $0.error.code == .timeout } ? .timeout : .unreachable
        return ManagementError(
            code: code,
            summary: "management API unreachable at all \(failures.count) nodes (last: \(last.summary))",
            brokerReason: failures.map { "\($0.url): \($0.error.brokerReason ?? $0.error.summary)" }.joined(separator: "; "))
    }

    /// libcurl failure -> error. `brokerReason` carries libcurl's own text (it names host and
    /// port, never credentials) for logs.
    static func transportError(_ result: TransferResult, base: String, operation: String, elapsed: Int) -> ManagementError {
        let code = result.curlCode
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            let phase = result.requestBytes == 0 ? "connecting to" : "waiting for"
            return ManagementError(
                code: .timeout,
                summary: "management API timed out \(phase) \(base) after \(elapsed) ms (\(operation))",
                brokerReason: result.curlDetail)
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM,
            CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
            CURLE_SSL_CRL_BADFILE, CURLE_SSL_CIPHER:
            return ManagementError(
                code: .tls,
                summary: "TLS verification failed for management API at \(base) (\(lowercasedFirst(CurlGlobal.message(for: code))))",
                brokerReason: result.curlDetail)
        case CURLE_WRITE_ERROR where result.responseTooLarge:
            return ManagementError(
                code: .invalidResponse, status: result.status == 0 ? nil : result.status,
                summary: "management API answer to \(operation) is too large")
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT:
            return ManagementError(
                code: .invalidConfiguration,
                summary: "management URL \(base) cannot be used (\(lowercasedFirst(CurlGlobal.message(for: code))))",
                brokerReason: result.curlDetail)
        default:
            var reason = CurlGlobal.message(for: code)
            if code == CURLE_COULDNT_CONNECT, result.osErrno != 0 {
                reason = String(cString: strerror(result.osErrno))  // "Connection refused"
            }
            return ManagementError(
                code: .unreachable,
                summary: "management API unreachable at \(base) (\(lowercasedFirst(reason)))",
                brokerReason: result.curlDetail)
        }
    }

    /// "Couldn't connect" -> "couldn't connect", but "SSL peer certificate" stays as it is.
    private static func lowercasedFirst(_ text: String) -> String {
        guard let first = text.first, let second = text.dropFirst().first, second.isLowercase else { return text }
        return first.lowercased() + text.dropFirst()
    }
}

extension ManagementClient {
    /// What all `withLogger` copies share. Releasing the last copy stops the thread.
    final class Core: Sendable {
        let configuration: ManagementConfiguration
        let baseURLs: [String]
        let loop: CurlMultiLoop
        /// The node that answered last; tried first next time.
        let preferredIndex = Atomic<Int>(0)

        init(configuration: ManagementConfiguration, logger: Logger) throws {
            self.baseURLs = try configuration.validatedBaseURLs()
            self.configuration = configuration
            do {
                self.loop = try CurlMultiLoop(maxConnections: 32, logger: logger)
            } catch {
                // Without its loop the client can make no call at all, whatever libcurl refused.
                throw ManagementError(code: .invalidConfiguration, summary: error.summary)
            }
        }

        deinit { loop.shutdown() }
    }
}

extension Duration {
    /// Whole milliseconds, rounded down, at least 0.
    var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        return max(0, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}
