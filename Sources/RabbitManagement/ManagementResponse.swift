import FoundationEssentials
import WireFormat

/// A 2xx answer from the management API.
public struct ManagementResponse: Sendable, Hashable {
    public var status: Int
    public var body: [UInt8]

    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }

    /// The body as JSON; `.null` for an empty body (204). Throws `.invalidResponse`.
    public func json() throws(ManagementError) -> JSONValue {
        guard !body.isEmpty else { return .null }
        do {
            return try JSONValue.decode(body)
        } catch {
            throw ManagementError(
                code: .invalidResponse, status: status,
                summary: "management API answered \(status) with a body that is not JSON")
        }
    }
}
