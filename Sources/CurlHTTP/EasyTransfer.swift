import CCurl
import Glibc
import Synchronization

/// What one HTTP exchange needs; applied to an easy handle by `EasyTransfer`.
public struct TransferRequest: Sendable {
    /// Basic-auth credentials, handed to libcurl as options (CURLOPT_USERNAME/PASSWORD) rather
    /// than written into the URL: URLs end up in logs and error messages.
    public struct BasicCredentials: Sendable, CustomStringConvertible {
        public var username: String
        public var password: String

        public init(username: String, password: String) {
            self.username = username
            self.password = password
        }

        /// Safe to log: the password is left out.
        public var description: String { "BasicCredentials(username: \(username), password: <redacted>)" }
    }

    public var url: String
    /// Sent as is (CURLOPT_CUSTOMREQUEST). "HEAD" also tells libcurl to expect no body.
    public var method: String
    /// Request header lines the way libcurl takes them: "Name: value"; "Name;" sends an empty
    /// value; "Name:" removes a header libcurl would add. Line breaks are refused.
    ///
    /// Nothing is added but "Expect:" (turns off 100-continue, a wasted round trip for small
    /// bodies), left out when a line names Expect itself. In particular no Content-Type: with a
    /// body and no Content-Type line, libcurl's own form type is removed, not replaced. Accept
    /// is libcurl's "*/*" unless a line sets it.
    public var headerLines: [String]
    public var body: [UInt8]?
    public var credentials: BasicCredentials?
    public var timeoutMilliseconds: Int
    public var connectTimeoutMilliseconds: Int
    /// https: CA bundle to verify the server with (CURLOPT_CAINFO); nil for the system store.
    /// Peer and host verification are always on.
    public var caFile: String?
    public var clientCertFile: String?
    public var clientKeyFile: String?
    /// Upper bound on the response body; a larger one ends the transfer (`responseTooLarge`).
    public var maxResponseBytes: Int
    /// Upper bound on all response header bytes of the transfer, interim responses included,
    /// so that a server cannot grow memory without limit through headers either.
    public var maxHeaderBytes: Int

    public init(
        url: String, method: String, headerLines: [String] = [], body: [UInt8]? = nil,
        credentials: BasicCredentials? = nil, timeoutMilliseconds: Int, connectTimeoutMilliseconds: Int,
        caFile: String? = nil, clientCertFile: String? = nil, clientKeyFile: String? = nil,
        maxResponseBytes: Int, maxHeaderBytes: Int = 64 << 10
    ) {
        self.url = url
        self.method = method
        self.headerLines = headerLines
        self.body = body
        self.credentials = credentials
        self.timeoutMilliseconds = timeoutMilliseconds
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.caFile = caFile
        self.clientCertFile = clientCertFile
        self.clientKeyFile = clientKeyFile
        self.maxResponseBytes = maxResponseBytes
        self.maxHeaderBytes = maxHeaderBytes
    }
}

/// One response header field as it came off the wire (the value without surrounding blanks).
public struct HeaderField: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// What came back from one attempt. `curlCode != CURLE_OK` means no (complete) HTTP answer.
public struct TransferResult: @unchecked Sendable {  // CURLcode is a plain C enum value
    public var curlCode: CURLcode
    /// libcurl's error buffer ("Failed to connect to 127.0.0.1 port 1 after 0 ms: ..."): for logs.
    public var curlDetail: String
    /// errno of the failed connect, 0 if none.
    public var osErrno: Int32
    public var status: Int
    /// The final response's header fields in the order received; those of interim (1xx)
    /// responses and trailers are left out.
    public var headers: [HeaderField]
    public var body: [UInt8]
    /// Bytes of request headers sent: 0 means the request never left this process, so it is safe
    /// to send it to another node.
    public var requestBytes: Int
    /// The body outgrew `maxResponseBytes` or the headers `maxHeaderBytes`, and the transfer was
    /// cut off (CURLE_WRITE_ERROR).
    public var responseTooLarge: Bool

    /// A whole HTTP answer arrived, whatever its status.
    public var isComplete: Bool { curlCode == CURLE_OK }
    /// CURLOPT_TIMEOUT_MS or CURLOPT_CONNECTTIMEOUT_MS ran out.
    public var timedOut: Bool { curlCode == CURLE_OPERATION_TIMEDOUT }
    /// curl's static text for `curlCode` ("Couldn't connect to server").
    public var curlMessage: String { CurlGlobal.message(for: curlCode) }
}

public enum TransferOutcome: Sendable {
    case finished(TransferResult)
    /// The calling task was cancelled; the transfer was taken off the loop.
    case cancelled
    /// The loop was shut down before the transfer finished.
    case shutdown
}

/// One HTTP exchange on one libcurl easy handle.
///
/// Threading rule: an easy handle is used by one thread at a time. The caller's thread
/// configures the handle in `init`; from `CurlMultiLoop.submit` on, only the multi thread touches
/// the handle, the response and `continuation`, until `complete` cleans the handle up and resumes
/// the continuation. That hand-over (through the loop's lock) is why this type can be
/// `@unchecked Sendable`. Only `cancelRequested` is shared, and it is atomic.
final class EasyTransfer: @unchecked Sendable {
    private var handle: UnsafeMutableRawPointer?
    private var requestHeaders: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var response: [UInt8] = []
    private var responseHeaders: [HeaderField] = []
    /// Between a status line and the blank line that ends its head. Header lines outside a head
    /// are trailers, which are not the response's headers.
    private var inResponseHead = false
    private var headerBytes = 0
    private var responseTooLarge = false
    private let maxResponseBytes: Int
    private let maxHeaderBytes: Int
    private var continuation: CheckedContinuation<TransferOutcome, Never>?
    let cancelRequested = Atomic<Bool>(false)

    init(_ request: TransferRequest) throws(CurlError) {
        try CurlGlobal.ensureInitialized()
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        maxResponseBytes = request.maxResponseBytes
        maxHeaderBytes = request.maxHeaderBytes
        guard let handle = curl_easy_init() else {
            throw CurlError(kind: .handle, summary: "libcurl could not create a transfer")
        }
        self.handle = handle
        do {
            try configure(handle, request)
        } catch {
            releaseHandle()
            throw error
        }
    }

    deinit {
        releaseHandle()
        errorBuffer.deallocate()
    }

    var easyHandle: UnsafeMutableRawPointer? { handle }

    /// Called once, before the transfer is submitted (caller's thread).
    func setContinuation(_ continuation: CheckedContinuation<TransferOutcome, Never>) {
        self.continuation = continuation
    }

    /// Reads status and counters after libcurl is done with the transfer (multi thread).
    func result(curlCode: CURLcode) -> TransferResult {
        var status = 0
        var requestBytes = 0
        var osErrno: Int32 = 0
        if let handle {
            var value = 0
            if warren_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &value) == CURLE_OK { status = value }
            if warren_curl_easy_getinfo_long(handle, CURLINFO_REQUEST_SIZE, &value) == CURLE_OK { requestBytes = value }
            if warren_curl_easy_getinfo_long(handle, CURLINFO_OS_ERRNO, &value) == CURLE_OK { osErrno = Int32(value) }
        }
        var detail = String(cString: errorBuffer)
        if detail.isEmpty, curlCode != CURLE_OK { detail = CurlGlobal.message(for: curlCode) }
        return TransferResult(
            curlCode: curlCode, curlDetail: detail, osErrno: osErrno, status: status,
            headers: responseHeaders, body: response, requestBytes: requestBytes,
            responseTooLarge: responseTooLarge)
    }

    /// Frees the handle and resumes the caller, exactly once. The multi thread calls this after
    /// `curl_multi_remove_handle` (or for a transfer it never added); a second call is a no-op.
    func complete(_ outcome: TransferOutcome) {
        releaseHandle()
        let continuation = self.continuation
        self.continuation = nil
        continuation?.resume(returning: outcome)
    }

    private func releaseHandle() {
        if let handle { curl_easy_cleanup(handle) }
        handle = nil
        if let requestHeaders { curl_slist_free_all(requestHeaders) }
        requestHeaders = nil
    }

    // MARK: - write and header callbacks

    /// Accumulates the body. Returning less than `size * count` makes libcurl abort the transfer
    /// with CURLE_WRITE_ERROR, which is how an oversized answer is cut off.
    fileprivate func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard response.count + bytes.count <= maxResponseBytes else {
            responseTooLarge = true
            return false
        }
        if response.isEmpty { reserveAnnouncedLength() }
        response.append(contentsOf: bytes)
        return true
    }

    /// The whole body in one allocation when the answer announces its length (the broker's
    /// listings do): growing by doubling would copy a listing of megabytes several times and
    /// leave the smaller buffers behind in malloc's arenas.
    private func reserveAnnouncedLength() {
        guard let handle else { return }
        var length: curl_off_t = -1
        guard warren_curl_easy_getinfo_off_t(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK,
              length > 0, length <= curl_off_t(maxResponseBytes)
        else { return }
        response.reserveCapacity(Int(length))
    }

    /// Takes one header line as libcurl hands them over (status lines, fields, the blank line
    /// that ends a head, trailers), CRLF included. Every response of the transfer comes through
    /// here, interim 1xx ones and a proxy's CONNECT answer too, so a status line starts the
    /// collection over. False (abort) once `maxHeaderBytes` is passed.
    fileprivate func appendHeaderLine(_ bytes: UnsafeRawBufferPointer) -> Bool {
        headerBytes += bytes.count
        guard headerBytes <= maxHeaderBytes else {
            responseTooLarge = true
            return false
        }
        var line = bytes[...]
        while let last = line.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: "\n") { line = line.dropLast() }
        if line.starts(with: "HTTP/".utf8) {
            responseHeaders.removeAll()
            inResponseHead = true
        } else if line.isEmpty {
            inResponseHead = false
        } else if inResponseHead {
            if let first = line.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                // obs-fold (RFC 9112 §5.2): the line continues the previous field's value.
                guard !responseHeaders.isEmpty else { return true }
                let more = Self.trimmed(line)
                if !more.isEmpty { responseHeaders[responseHeaders.count - 1].value += " " + String(decoding: more, as: UTF8.self) }
            } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
                responseHeaders.append(HeaderField(
                    name: String(decoding: line[..<colon], as: UTF8.self),
                    value: String(decoding: Self.trimmed(line[(colon + 1)...]), as: UTF8.self)))
            }
        }
        return true
    }

    private static func trimmed(_ bytes: Slice<UnsafeRawBufferPointer>) -> Slice<UnsafeRawBufferPointer> {
        var bytes = bytes
        while let first = bytes.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { bytes = bytes.dropFirst() }
        while let last = bytes.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { bytes = bytes.dropLast() }
        return bytes
    }

    // MARK: - options

    private func configure(_ handle: UnsafeMutableRawPointer, _ request: TransferRequest) throws(CurlError) {
        try set(handle, CURLOPT_URL, request.url)
        try set(handle, CURLOPT_CUSTOMREQUEST, request.method)
        try set(handle, CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))

        var headerLines: [String] = []
        if !request.headerLines.contains(where: { Self.line($0, names: "Expect") }) { headerLines.append("Expect:") }
        headerLines += request.headerLines
        if let body = request.body {
            // Without this libcurl would label the body application/x-www-form-urlencoded.
            if !request.headerLines.contains(where: { Self.line($0, names: "Content-Type") }) {
                headerLines.append("Content-Type:")
            }
            try check(warren_curl_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)), "POSTFIELDSIZE")
            // COPYPOSTFIELDS copies the bytes now, so `body` need not outlive this call.
            let copied = body.withUnsafeBytes { raw in
                let base = raw.baseAddress ?? UnsafeRawPointer(errorBuffer)  // empty body: any valid pointer
                return warren_curl_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base))
            }
            try check(copied, "COPYPOSTFIELDS")
        } else if request.method == "GET" {
            try set(handle, CURLOPT_HTTPGET, 1)
        }
        // A HEAD answer announces a length it never sends: without NOBODY libcurl would wait
        // for that body until the timeout.
        if request.method == "HEAD" { try set(handle, CURLOPT_NOBODY, 1) }
        for line in headerLines {
            // A line break would end the header early and let the rest pass for more headers.
            guard !line.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) else {
                throw CurlError(kind: .option, summary: "a request header line contains a line break")
            }
            guard let list = curl_slist_append(requestHeaders, line) else {
                throw CurlError(kind: .option, summary: "libcurl could not build request headers")
            }
            requestHeaders = list
        }
        try check(warren_curl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, requestHeaders), "HTTPHEADER")

        // Credentials as options, never in the URL (URLs end up in logs and error messages).
        if let credentials = request.credentials {
            try check(warren_curl_easy_use_basic_auth(handle), "HTTPAUTH")
            try set(handle, CURLOPT_USERNAME, credentials.username)
            try set(handle, CURLOPT_PASSWORD, credentials.password)
        }

        try set(handle, CURLOPT_TIMEOUT_MS, request.timeoutMilliseconds)
        try set(handle, CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeoutMilliseconds)
        // No SIGALRM-based DNS timeouts: signals and a multi-threaded process do not mix.
        try set(handle, CURLOPT_NOSIGNAL, 1)
        try set(handle, CURLOPT_TCP_KEEPALIVE, 1)
        try set(handle, CURLOPT_FOLLOWLOCATION, 0)
        try check(warren_curl_easy_restrict_protocols_to_http(handle), "PROTOCOLS")

        try set(handle, CURLOPT_SSL_VERIFYPEER, 1)
        try set(handle, CURLOPT_SSL_VERIFYHOST, 2)
        if let caFile = request.caFile { try set(handle, CURLOPT_CAINFO, caFile) }
        if let cert = request.clientCertFile { try set(handle, CURLOPT_SSLCERT, cert) }
        if let key = request.clientKeyFile { try set(handle, CURLOPT_SSLKEY, key) }

        try check(warren_curl_easy_setopt_write_function(handle, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            guard let context else { return 0 }
            let transfer = Unmanaged<EasyTransfer>.fromOpaque(context).takeUnretainedValue()
            let length = size * count
            guard length > 0, let data else { return length }
            return transfer.append(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
        }, "WRITEFUNCTION")
        try check(warren_curl_easy_setopt_write_function(handle, CURLOPT_HEADERFUNCTION) { data, size, count, context in
            guard let context else { return 0 }
            let transfer = Unmanaged<EasyTransfer>.fromOpaque(context).takeUnretainedValue()
            let length = size * count
            guard length > 0, let data else { return length }
            return transfer.appendHeaderLine(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
        }, "HEADERFUNCTION")
        // Unretained: the loop's in-flight table keeps the transfer alive while curl may call back.
        try set(handle, CURLOPT_WRITEDATA, pointer: Unmanaged.passUnretained(self).toOpaque())
        try set(handle, CURLOPT_HEADERDATA, pointer: Unmanaged.passUnretained(self).toOpaque())
    }

    /// Whether a header line ("Name: value", "Name;", "Name:") is about the header `name`.
    private static func line(_ line: String, names name: String) -> Bool {
        let lineName = line.utf8.prefix { $0 != UInt8(ascii: ":") && $0 != UInt8(ascii: ";") }
        return lineName.count < line.utf8.count
            && String(decoding: lineName, as: UTF8.self).trimmingBlanks().lowercased() == name.lowercased()
    }

    private func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: Int) throws(CurlError) {
        try check(warren_curl_easy_setopt_long(handle, option, value), "option \(option.rawValue)")
    }

    private func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: String) throws(CurlError) {
        try check(warren_curl_easy_setopt_string(handle, option, value), "option \(option.rawValue)")
    }

    private func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, pointer: UnsafeMutableRawPointer) throws(CurlError) {
        try check(warren_curl_easy_setopt_pointer(handle, option, pointer), "option \(option.rawValue)")
    }

    private func check(_ code: CURLcode, _ what: String) throws(CurlError) {
        guard code == CURLE_OK else {
            throw CurlError(kind: .option, summary: "libcurl rejected \(what) (\(CurlGlobal.message(for: code)))")
        }
    }
}

extension String {
    fileprivate func trimmingBlanks() -> Substring {
        var text = self[...]
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}
