import Glibc

/// The limits the parser enforces while bytes arrive.
struct HTTPParserLimits: Sendable, Equatable {
    var maxRequestLineBytes = 8 * 1024
    var maxHeaderBytes = 32 * 1024
    var maxBodyBytes = 1 << 20

    init(maxRequestLineBytes: Int = 8 * 1024, maxHeaderBytes: Int = 32 * 1024, maxBodyBytes: Int = 1 << 20) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
    }

    init(_ configuration: HTTPServerConfiguration) {
        self.init(
            maxRequestLineBytes: configuration.maxRequestLineBytes,
            maxHeaderBytes: configuration.maxHeaderBytes,
            maxBodyBytes: configuration.maxBodyBytes)
    }
}

/// A request head that passed every framing check; the body (if any) is `contentLength`
/// bytes right after the head.
struct HTTPRequestHead: Sendable, Equatable {
    var method: String
    var path: String
    var query: String?
    var version: String
    var headers: HTTPHeaders
    var contentLength: Int
    /// RFC 9112 §9.3: whether the connection persists after this exchange.
    var keepAlive: Bool
    /// RFC 9110 §10.1.1: the client waits for "100 Continue" before sending the body.
    var expectsContinue: Bool
}

enum HTTPParseResult: Sendable {
    /// The head is complete; `consumed` bytes (the head with its final CRLF) belong to it.
    case complete(HTTPRequestHead, consumed: Int)
    /// More bytes are needed; call again with the same bytes plus whatever arrives next.
    case incomplete
    /// The request cannot be served; answer `status` with `detail` and close the connection.
    case invalid(status: Int, detail: String)
}

/// An incremental HTTP/1.1 request-head parser (RFC 9112), in the spirit of picohttpparser:
/// no I/O, and each call looks only at the bytes that arrived since the previous call, so a
/// slowloris client trickling bytes costs O(bytes), not O(bytes²).
///
/// Feed it the connection's unconsumed bytes; the buffer may only grow between calls until the
/// parser answers `.complete` or `.invalid`. After `.complete`, drop the consumed bytes and
/// `reset()`.
struct HTTPRequestParser {
    let limits: HTTPParserLimits
    /// Index of the first byte not yet examined; always the start of a line or the buffer end.
    private var scanned = 0
    /// Start of the line being read.
    private var lineStart = 0
    /// Set once the request line's CRLF arrived and it passed its checks.
    private var requestLine: RequestLine?
    /// Index just past the request line's CRLF: where the header section starts.
    private var headerStart = 0
    private var fields: [(String, String)] = []

    init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
    }

    /// Parses a whole buffer from scratch (a fresh parser); convenient for tests.
    static func parse(_ bytes: [UInt8], limits: HTTPParserLimits = HTTPParserLimits()) -> HTTPParseResult {
        var parser = HTTPRequestParser(limits: limits)
        return parser.parse(bytes)
    }

    mutating func reset() {
        self = HTTPRequestParser(limits: limits)
    }

    mutating func parse(_ bytes: [UInt8]) -> HTTPParseResult {
        bytes.withUnsafeBufferPointer { parse($0) }
    }

    mutating func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> HTTPParseResult {
        let end = bytes.count
        while scanned < end {
            // memchr finds the next LF without a Swift loop over every byte.
            guard let base = bytes.baseAddress,
                  let hit = memchr(base + scanned, Int32(UInt8.lf), end - scanned)
            else {
                scanned = end
                return checkPartialLine(bytes)
            }
            let lf = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            // RFC 9112 §2.2: a bare LF may be read as a line end by some parsers and not by
            // others; that ambiguity is what request smuggling feeds on, so refuse it.
            guard lf > lineStart, bytes[lf - 1] == .cr else {
                return .invalid(status: 400, detail: "A line ends in a bare LF; HTTP/1.1 lines must end in CRLF.")
            }
            let line = UnsafeBufferPointer(rebasing: bytes[lineStart..<(lf - 1)])
            scanned = lf + 1

            if requestLine == nil {
                if line.isEmpty {
                    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line received
                    // before the request-line. Ignore a few; many is an attack or garbage.
                    guard lf + 1 <= 8 else {
                        return .invalid(status: 400, detail: "Too many empty lines precede the request line.")
                    }
                    lineStart = lf + 1
                    continue
                }
                guard line.count <= limits.maxRequestLineBytes else { return Self.requestLineTooLong }
                switch parseRequestLine(line) {
                case .success(let parsed): requestLine = parsed
                case .failure(let error): return .invalid(status: error.status, detail: error.detail)
                }
                headerStart = lf + 1
            } else if line.isEmpty {
                // RFC 9112 §2.1: the empty line ends the header section.
                guard let requestLine else { return .incomplete }  // unreachable: set before any field line
                return Self.frame(requestLine, fields: fields, consumed: lf + 1, limits: limits)
            } else {
                guard lf + 1 - headerStart <= limits.maxHeaderBytes else { return Self.headersTooLarge }
                if let error = parseFieldLine(line) {
                    return .invalid(status: error.status, detail: error.detail)
                }
            }
            lineStart = lf + 1
        }
        return .incomplete
    }

    /// Limits are checked on the unfinished line too, so an endless line without CRLF is
    /// refused as soon as it crosses the limit rather than buffered until a timeout.
    private func checkPartialLine(_ bytes: UnsafeBufferPointer<UInt8>) -> HTTPParseResult {
        // A trailing CR may be the first half of the line's CRLF; it does not count yet.
        let pendingCR = bytes.count > lineStart && bytes[bytes.count - 1] == .cr ? 1 : 0
        if requestLine == nil {
            if bytes.count - lineStart - pendingCR > limits.maxRequestLineBytes { return Self.requestLineTooLong }
        } else if bytes.count - headerStart - pendingCR > limits.maxHeaderBytes {
            return Self.headersTooLarge
        }
        return .incomplete
    }

    private static let requestLineTooLong = HTTPParseResult.invalid(
        status: 414, detail: "The request line is longer than this server accepts.")
    private static let headersTooLarge = HTTPParseResult.invalid(
        status: 431, detail: "The request header section is larger than this server accepts.")

    // MARK: Request line

    struct RequestLine {
        var method: String
        var path: String
        var query: String?
        var version: String
    }

    struct Failure: Error {
        var status: Int
        var detail: String
        init(_ status: Int, _ detail: String) {
            self.status = status
            self.detail = detail
        }
    }

    /// RFC 9112 §3: request-line = method SP request-target SP HTTP-version.
    /// Exactly one SP between the parts: §3 lets a server accept other whitespace, but every
    /// leniency is a place where two parsers can disagree.
    private func parseRequestLine(_ line: UnsafeBufferPointer<UInt8>) -> Result<RequestLine, Failure> {
        let malformed = Failure(400, "The request line must be 'METHOD SP request-target SP HTTP-version'.")
        guard let firstSP = line.firstIndex(of: .sp) else { return .failure(malformed) }
        guard let secondSP = line[(firstSP + 1)...].firstIndex(of: .sp) else { return .failure(malformed) }
        let method = UnsafeBufferPointer(rebasing: line[..<firstSP])
        let target = UnsafeBufferPointer(rebasing: line[(firstSP + 1)..<secondSP])
        let version = UnsafeBufferPointer(rebasing: line[(secondSP + 1)...])

        // RFC 9110 §9.1: method = token.
        guard !method.isEmpty, method.allSatisfy(\.isTokenChar) else {
            return .failure(Failure(400, "The request method is not a valid token."))
        }
        // RFC 9112 §3.2: the target is one of four forms; a server is only obliged to take
        // origin-form ("/path?query") from clients that are not talking to a proxy. We accept
        // only that; "*" and absolute-form get a 400. Controls, spaces, DEL and non-ASCII
        // bytes are not URI characters (RFC 3986 §2), nor is "#" (fragments are not sent).
        guard target.first == UInt8(ascii: "/") else {
            return .failure(Failure(400, "The request-target must be an absolute path (origin-form), such as '/v1/items'."))
        }
        guard target.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }) else {
            return .failure(Failure(400, "The request-target contains a character that is not allowed in a URI."))
        }
        // RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT; only 1.0 and 1.1 are served here.
        guard version.count == 8, version.starts(with: Array("HTTP/".utf8)), version[5].isDigit,
              version[6] == UInt8(ascii: "."), version[7].isDigit
        else {
            return .failure(Failure(400, "The request line does not end in a valid HTTP version such as 'HTTP/1.1'."))
        }
        guard version[5] == UInt8(ascii: "1"), version[7] == UInt8(ascii: "0") || version[7] == UInt8(ascii: "1") else {
            return .failure(Failure(505, "Only HTTP/1.0 and HTTP/1.1 are supported."))
        }

        let path: String
        var query: String?
        if let question = target.firstIndex(of: UInt8(ascii: "?")) {
            path = String(decoding: target[..<question], as: UTF8.self)
            query = String(decoding: target[(question + 1)...], as: UTF8.self)
        } else {
            path = String(decoding: target, as: UTF8.self)
        }
        return .success(RequestLine(
            method: String(decoding: method, as: UTF8.self), path: path, query: query,
            version: String(decoding: version, as: UTF8.self)))
    }

    // MARK: Field lines

    /// RFC 9112 §5: field-line = field-name ":" OWS field-value OWS.
    private mutating func parseFieldLine(_ line: UnsafeBufferPointer<UInt8>) -> Failure? {
        // RFC 9112 §5.2: obs-fold (a line starting with SP or HTAB continues the previous one).
        // A server MUST either reject it with 400 or unfold it; we reject.
        if line[0] == .sp || line[0] == .htab {
            return Failure(400, "Header field values must not be folded across lines (obs-fold).")
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            return Failure(400, "A header line has no ':' separating its name from its value.")
        }
        let name = UnsafeBufferPointer(rebasing: line[..<colon])
        // RFC 9112 §5.1: no whitespace is allowed between the field name and the colon; a
        // server MUST reject such a request with 400 (a classic smuggling vector).
        if let last = name.last, last == .sp || last == .htab {
            return Failure(400, "A header field name is followed by whitespace before the ':'.")
        }
        // RFC 9110 §5.1: field-name = token.
        guard !name.isEmpty, name.allSatisfy(\.isTokenChar) else {
            return Failure(400, "A header field name is empty or contains a character that is not allowed.")
        }
        var valueStart = colon + 1
        var valueEnd = line.count
        while valueStart < valueEnd, line[valueStart] == .sp || line[valueStart] == .htab { valueStart += 1 }
        while valueEnd > valueStart, line[valueEnd - 1] == .sp || line[valueEnd - 1] == .htab { valueEnd -= 1 }
        let value = UnsafeBufferPointer(rebasing: line[valueStart..<valueEnd])
        // RFC 9110 §5.5: field-value characters are VCHAR, obs-text, SP and HTAB; CR, LF, NUL
        // and other controls MUST be rejected (or replaced) - we reject.
        guard value.allSatisfy({ $0 == .htab || ($0 >= 0x20 && $0 != 0x7F) }) else {
            return Failure(400, "A header field value contains a control character.")
        }
        fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        return nil
    }
}

extension Substring {
    func trimmingOWS() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result.removeFirst() }
        while let last = result.last, last == " " || last == "\t" { result.removeLast() }
        return result
    }
}

extension UInt8 {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let sp = UInt8(ascii: " ")
    static let htab = UInt8(ascii: "\t")

    var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }

    /// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
    /// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
    var isTokenChar: Bool { tokenTable[Int(self)] }
}

private let tokenTable: [Bool] = (0...255).map { (byte: Int) -> Bool in
    let c = UInt8(byte)
    if c.isDigit { return true }
    if (c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z") { return true }
    return "!#$%&'*+-.^_`|~".utf8.contains(c)
}
