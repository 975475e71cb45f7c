import WireFormat

/// The broker's big listings (every vhost, user or permission: megabytes with thousands of
/// environments) read straight from the answer's bytes, one element at a time: no tree of the
/// whole answer is ever built. With 5,000 environments the vhost listing is about 7 MB; decoded
/// whole it held several times that at once, which glibc then kept in its arenas.
extension ManagementClient {
    /// A GET of a listing (retried once after a 5xx, like `get`), each item given to `element`
    /// as it is parsed; items gone from the listing are left out as by `decodeList`.
    func getList<T>(
        _ segments: [String], query: [(String, String)] = [], operation: String, what: String,
        _ element: (JSONValue) throws(ManagementError) -> T
    ) async throws -> [T] {
        try decodeList(try await getResponse(segments, query: query, operation: operation), what: what, element)
    }
}

/// `decodeList` over a listing's bytes rather than a decoded tree.
func decodeList<T>(
    _ response: ManagementResponse, what: String, _ element: (JSONValue) throws(ManagementError) -> T
) throws(ManagementError) -> [T] {
    var elements = StrictJSON.Elements(response.body)
    var out: [T] = []
    while true {
        let next: JSONValue?
        do {
            next = try elements.next()
        } catch {
            throw ManagementError(
                code: .invalidResponse, status: response.status,
                summary: "management API answered \(response.status) with a body that is not a JSON \(what)")
        }
        guard let item = next else { return out }
        if isGoneFromListing(item) { continue }
        out.append(try element(item))
    }
}
