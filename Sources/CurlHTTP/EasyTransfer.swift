import CCurl
import Glibc
import Synchronization

/// What one HTTP exchange needs; built by the client, applied to an easy handle by `EasyTransfer`.
public struct TransferRequest: Sendable {
    public var url: String
    public var method: String
    public var body: [UInt8]?
    public var username: String
    public var password: String
    public var timeoutMilliseconds: Int
    public var connectTimeoutMilliseconds: Int
    public var caFile: String?
    public var clientCertFile: String?
    public var clientKeyFile: String?
    public var maxResponseBytes: Int

    public init(
        url: String, method: String, body: [UInt8]?, username: String, password: String,
        timeoutMilliseconds: Int, connectTimeoutMilliseconds: Int,
        caFile: String?, clientCertFile: String?, clientKeyFile: String?, maxResponseBytes: Int
    ) {
        self.url = url
        self.method = method
        self.body = body
        self.username = username
        self.password = password
        self.timeoutMilliseconds = timeoutMilliseconds
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.caFile = caFile
        self.clientCertFile = clientCertFile
        self.clientKeyFile = clientKeyFile
        self.maxResponseBytes = maxResponseBytes
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
    public var body: [UInt8]
    /// Bytes of request headers sent: 0 means the request never left this process, so it is safe
    /// to send it to another node.
    public var requestBytes: Int
    public var responseTooLarge: Bool
}

public enum TransferOutcome: Sendable {
    case finished(TransferResult)
    case cancelled
    case shutdown
}

/// One HTTP exchange on one libcurl easy handle.
///
/// Threading rule: an easy handle is used by one thread at a time. The caller's thread
/// configures the handle in `init`; from `CurlMultiLoop.submit` on, only the multi thread touches
/// the handle, `response` and `continuation`, until `complete` cleans the handle up and resumes
/// the continuation. That hand-over (through the loop's lock) is why this type can be
/// `@unchecked Sendable`. Only `cancelRequested` is shared, and it is atomic.
final class EasyTransfer: @unchecked Sendable {
    private var handle: UnsafeMutableRawPointer?
    private var headers: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var response: [UInt8] = []
    private var responseTooLarge = false
    private let maxResponseBytes: Int
    private var continuation: CheckedContinuation<TransferOutcome, Never>?
    let cancelRequested = Atomic<Bool>(false)

    init(_ request: TransferRequest) throws(CurlError) {
        try CurlGlobal.ensureInitialized()
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        maxResponseBytes = request.maxResponseBytes
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
            body: response, requestBytes: requestBytes, responseTooLarge: responseTooLarge)
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
        if let headers { curl_slist_free_all(headers) }
        headers = nil
    }

    // MARK: - write callback

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

    // MARK: - options

    private func configure(_ handle: UnsafeMutableRawPointer, _ request: TransferRequest) throws(CurlError) {
        try set(handle, CURLOPT_URL, request.url)
        try set(handle, CURLOPT_CUSTOMREQUEST, request.method)
        try set(handle, CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))

        // No "Accept: application/json": 3.10 answers 406 to it on vhost-limits and user-limits.
        // "Expect:" turns off 100-continue, a wasted round trip for our small bodies.
        var headerLines = ["Expect:"]
        if let body = request.body {
            headerLines.append("Content-Type: application/json")
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
        for line in headerLines {
            guard let list = curl_slist_append(headers, line) else {
                throw CurlError(kind: .option, summary: "libcurl could not build request headers")
            }
            headers = list
        }
        try check(warren_curl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, headers), "HTTPHEADER")

        // Credentials as options, never in the URL (URLs end up in logs and error messages).
        try check(warren_curl_easy_use_basic_auth(handle), "HTTPAUTH")
        try set(handle, CURLOPT_USERNAME, request.username)
        try set(handle, CURLOPT_PASSWORD, request.password)

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
        // Unretained: the loop's in-flight table keeps the transfer alive while curl may call back.
        try set(handle, CURLOPT_WRITEDATA, pointer: Unmanaged.passUnretained(self).toOpaque())
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
