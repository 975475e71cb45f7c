import WireFormat

/// Global runtime parameters: small named JSON values the broker keeps cluster-wide, in its
/// metadata store, beside vhosts and users. Only administrators can read or write them
/// (tenant users have no management access at all), and reading one by name is a single
/// lookup, whatever else the broker holds: Warren keeps its per-team index of environments in
/// them (`Provisioning.TeamIndex`).
extension ManagementClient {
    /// The value of the global parameter `name`; nil when there is none.
    public func globalParameter(_ name: String) async throws -> JSONValue? {
        guard let json = try await getIfPresent(["global-parameters", name], operation: "GET global parameter") else { return nil }
        guard case .object(let fields) = json, let value = fields["value"] else {
            throw ManagementError(code: .invalidResponse, summary: "management API returned a global parameter without a value")
        }
        return value
    }

    /// Creates (201) or replaces (204) the global parameter.
    public func putGlobalParameter(_ name: String, value: JSONValue) async throws {
        _ = try await send("PUT", ["global-parameters", name], query: [], body: ["name": .string(name), "value": value],
                           operation: "PUT global parameter")
    }

    /// Every global parameter whose name starts with `prefix`, with its value (the broker's
    /// own ones, such as `cluster_name`, are few).
    public func globalParameters(prefix: String) async throws -> [String: JSONValue] {
        let json = try await get(["global-parameters"], operation: "GET global parameters")
        let items = try decodeList(json, what: "global parameter list") { (item: JSONValue) throws(ManagementError) -> (String, JSONValue)? in
            guard case .object(let fields) = item, case .string(let name) = fields["name"], let value = fields["value"] else { return nil }
            return (name, value)
        }
        var out: [String: JSONValue] = [:]
        for case let (name, value)? in items where name.utf8.starts(with: prefix.utf8) { out[name] = value }
        return out
    }
}
