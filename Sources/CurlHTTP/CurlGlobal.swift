import CCurl

/// `curl_global_init` must run once per process, before any other curl call and not
/// concurrently with one. A global `let` is initialised exactly once, thread-safely (swift_once),
/// on first use; every entry point into curl goes through `ensureInitialized()` first.
public enum CurlGlobal {
    private static let initResult: CURLcode = warren_curl_global_init_all()

    static func ensureInitialized() throws(CurlError) {
        let result = initResult
        guard result == CURLE_OK else {
            throw CurlError(
                kind: .initialisation,
                summary: "libcurl failed to initialise (\(CurlGlobal.message(for: result)))")
        }
    }

    /// curl's static text for a code ("Couldn't connect to server").
    public static func message(for code: CURLcode) -> String {
        guard let text = curl_easy_strerror(code) else { return "curl error \(code.rawValue)" }
        return String(cString: text)
    }
}
