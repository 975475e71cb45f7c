import CurlHTTP
import FoundationEssentials
import Glibc
import HTTPTypes
import Logging
import OpenAPIRuntime

/// A `ClientTransport` for swift-openapi-runtime that sends each request through libcurl.
///
/// The transfers run on one `CurlMultiLoop`: a thread of its own, never one of the cooperative
/// pool's, with its keep-alive connections shared by all requests. Copies of a transport share
/// that loop; it stops when the last copy is released, or at `shutdown()`.
///
/// Bodies are whole in memory both ways (bounded by `maxRequestBytes` and `maxResponseBytes`):
/// Warren's API exchanges small JSON documents, and a bound is what keeps a hostile or broken
/// server from growing this process without limit.
///
/// Cancelling the calling task takes the transfer off the loop and `send` throws
/// `CancellationError`. A failed transfer throws `CurlTransportError`.
public struct CurlClientTransport: ClientTransport {
    public struct Configuration: Sendable {
        /// For the whole exchange, connecting included (CURLOPT_TIMEOUT_MS).
        public var timeout: Duration = .seconds(30)
        /// For the TCP and TLS handshakes (CURLOPT_CONNECTTIMEOUT_MS).
        public var connectTimeout: Duration = .seconds(5)
        /// https: CA bundle to verify the server with (CURLOPT_CAINFO); nil for the system store.
        /// Peer and host verification are always on.
        public var caFile: String? = nil
        /// Client certificate and key (PEM), for a server that requires mutual TLS.
        public var clientCertFile: String? = nil
        public var clientKeyFile: String? = nil
        /// A larger response body ends the transfer with `.responseTooLarge`.
        public var maxResponseBytes: Int = 16 << 20
        /// A larger request body is refused before anything is sent.
        public var maxRequestBytes: Int = 16 << 20
        /// Keep-alive connections kept open across requests (CURLMOPT_MAXCONNECTS).
        public var maxConnections: Int = 8

        public init() {}
    }

    public let configuration: Configuration
    private let owner: LoopOwner

    /// Starts the libcurl thread; fails only if libcurl cannot be initialised or the thread
    /// cannot be started.
    public init(
        configuration: Configuration = Configuration(), logger: Logger = Logger(label: "warren.client.curl")
    ) throws(CurlError) {
        self.configuration = configuration
        self.owner = LoopOwner(try CurlMultiLoop(maxConnections: configuration.maxConnections, logger: logger))
    }

    /// Stops the libcurl thread: requests in flight and later ones fail with `.shutdown`. Shared
    /// by all copies. Idempotent.
    public func shutdown() {
        owner.loop.shutdown()
    }

    public func send(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let method = request.method.rawValue
        let url = try Self.url(baseURL, request.path, method: method)
        func failure(_ kind: CurlTransportError.Kind, _ detail: String) -> CurlTransportError {
            CurlTransportError(kind: kind, method: method, url: url, detail: detail)
        }

        var bodyBytes: [UInt8]?
        if let body {
            do {
                bodyBytes = try await [UInt8](collecting: body, upTo: configuration.maxRequestBytes)
            } catch let error as CancellationError {
                throw error
            } catch {
                throw failure(.invalidRequest, "the request body could not be read (\(error))")
            }
        }

        let transfer = TransferRequest(
            url: url, method: method, headerLines: Self.headerLines(request.headerFields), body: bodyBytes,
            timeoutMilliseconds: Self.milliseconds(configuration.timeout),
            connectTimeoutMilliseconds: Self.milliseconds(configuration.connectTimeout),
            caFile: configuration.caFile, clientCertFile: configuration.clientCertFile,
            clientKeyFile: configuration.clientKeyFile, maxResponseBytes: configuration.maxResponseBytes)
        let outcome: TransferOutcome
        do {
            outcome = try await owner.loop.perform(transfer)
        } catch {
            throw failure(.invalidRequest, error.summary)
        }

        let result: TransferResult
        switch outcome {
        case .cancelled: throw CancellationError()
        case .shutdown: throw failure(.shutdown, "the transport was shut down")
        case .finished(let finished): result = finished
        }
        guard result.isComplete else {
            if result.responseTooLarge {
                throw failure(.responseTooLarge, "the response is larger than \(configuration.maxResponseBytes) bytes or its headers too long")
            }
            var detail = result.curlDetail
            if result.osErrno != 0 {
                let reason = String(cString: strerror(result.osErrno))  // "Connection refused"
                if !detail.contains(reason) { detail += " (\(reason))" }
            }
            throw failure(result.timedOut ? .timeout : .transferFailed, detail)
        }
        guard (100...999).contains(result.status) else {
            throw failure(.invalidResponse, "the response has no usable status code (\(result.status))")
        }

        var fields = HTTPFields()
        for header in result.headers {
            // A name HTTPTypes refuses (not a token) cannot be represented; the rest of the
            // answer still can.
            guard let name = HTTPField.Name(header.name) else { continue }
            fields.append(HTTPField(name: name, value: header.value))
        }
        let response = HTTPResponse(status: .init(code: result.status), headerFields: fields)
        // A HEAD answer has no body, whatever Content-Length says.
        return (response, request.method == .head ? nil : HTTPBody(result.body))
    }

    // MARK: - building the request

    /// Base URL and the request's path (which carries the query) joined. Credentials in the URL
    /// are refused rather than sent: libcurl would use them, and URLs end up in error messages
    /// and logs; an Authorization header (a middleware) is the place for them.
    static func url(_ baseURL: URL, _ path: String?, method: String) throws -> String {
        var base = baseURL.absoluteString
        func refuse(_ detail: String) -> CurlTransportError {
            // The URL is left out of the error when it may carry a credential.
            CurlTransportError(kind: .invalidRequest, method: method, url: "(base URL)", detail: detail)
        }
        guard let schemeEnd = base.range(of: "://") else {
            throw refuse("the base URL has no scheme://host")
        }
        let authority = base[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.contains("@") else {
            throw refuse("the base URL must not contain credentials; send them in a header")
        }
        guard !authority.isEmpty, !base.contains("?"), !base.contains("#") else {
            throw refuse("the base URL must be scheme://host[:port][/prefix]")
        }
        while base.hasSuffix("/") { base.removeLast() }
        let path = path ?? "/"
        return base + (path.hasPrefix("/") ? path : "/" + path)
    }

    /// Every field as a libcurl header line, except the framing ones: libcurl frames the body it
    /// sends itself (Content-Length from the bytes it has), and a second, possibly different
    /// length would break the message.
    static func headerLines(_ fields: HTTPFields) -> [String] {
        fields.compactMap { field in
            if field.name == .contentLength || field.name == .transferEncoding { return nil }
            // "Name:" with nothing after it would tell libcurl to drop the header; "Name;" sends it empty.
            return field.value.isEmpty ? "\(field.name.rawName);" : "\(field.name.rawName): \(field.value)"
        }
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

/// Holds the loop for all copies of a transport (a struct) and stops it with the last one: the
/// loop's thread keeps the loop alive until it is shut down, so nothing else would.
private final class LoopOwner: Sendable {
    let loop: CurlMultiLoop

    init(_ loop: CurlMultiLoop) { self.loop = loop }

    deinit { loop.shutdown() }
}

/// A request that got no (complete) answer. The description says what happened and to which
/// URL; it never holds a header value, so no credential.
public struct CurlTransportError: Error, Sendable, CustomStringConvertible {
    /// A struct with a private representation rather than an enum, so that kinds can be added
    /// without breaking callers that switch over them.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidRequest, transferFailed, timeout, responseTooLarge, invalidResponse, shutdown
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Refused before sending: an unusable base URL, an unreadable or too large body, an
        /// option libcurl rejected.
        public static let invalidRequest = Kind(.invalidRequest)
        /// libcurl ended without an answer: connection refused, name not resolved, TLS
        /// handshake or verification failed, connection lost.
        public static let transferFailed = Kind(.transferFailed)
        /// `timeout` or `connectTimeout` ran out.
        public static let timeout = Kind(.timeout)
        /// The answer outgrew `maxResponseBytes`, or its headers `TransferRequest`'s default
        /// bound.
        public static let responseTooLarge = Kind(.responseTooLarge)
        /// An answer that cannot be an HTTP response.
        public static let invalidResponse = Kind(.invalidResponse)
        /// The transport was shut down before the request completed.
        public static let shutdown = Kind(.shutdown)

        public var description: String { base.rawValue }
    }

    public let kind: Kind
    public let method: String
    /// The request's URL, never with credentials (those are refused).
    public let url: String
    /// What happened, in libcurl's words when it was libcurl's doing.
    public let detail: String

    public var description: String { "\(method) \(url) failed: \(detail)" }
}
