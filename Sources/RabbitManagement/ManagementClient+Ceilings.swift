import WireFormat

/// What keeps one tenant from using up what every tenant shares: vhost and user limits, and
/// operator policies. Operator policies are the broker's own ceiling on queues: they combine
/// with a queue's policy and arguments, the lower value wins, and a tenant without the
/// `policymaker` tag can neither see nor change them.
extension ManagementClient {
    /// `max-connections` or `max-channels` of one user (RabbitMQ 3.8.10+); -1 removes the limit.
    public func putUserLimit(user: String, name: String, value: Int) async throws {
        _ = try await send("PUT", ["user-limits", user, name], query: [], body: ["value": .int(value)],
                           operation: "PUT user limit")
    }

    /// Every user's limits, by user name (users without limits are not listed).
    public func userLimits() async throws -> [String: [String: Int]] {
        try await limitsByOwner(["user-limits"], owner: "user", operation: "GET user limits")
    }

    /// Every vhost's limits, by vhost name (vhosts without limits are not listed).
    public func vhostLimits() async throws -> [String: [String: Int]] {
        try await limitsByOwner(["vhost-limits"], owner: "vhost", operation: "GET vhost limits")
    }

    private func limitsByOwner(_ segments: [String], owner: String, operation: String) async throws -> [String: [String: Int]] {
        let pairs = try await getList(segments, operation: operation, what: "limit list") {
            (item: JSONValue) throws(ManagementError) -> (String, [String: Int]) in
            let fields = try JSONFields(item, what: "limit")
            return (try fields.string(owner), fields.object("value").compactMapValues(\.intValue))
        }
        return Dictionary(pairs, uniquingKeysWith: { first, _ in first })
    }

    /// Creates (201) or replaces (204) an operator policy.
    public func putOperatorPolicy(
        vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int, applyTo: String
    ) async throws {
        let body: JSONValue = [
            "pattern": .string(pattern), "definition": .object(definition), "priority": .int(priority), "apply-to": .string(applyTo),
        ]
        _ = try await send("PUT", ["operator-policies", vhost, name], query: [], body: body, operation: "PUT operator policy")
    }

    /// False when there was no such operator policy (404).
    public func deleteOperatorPolicy(vhost: String, name: String) async throws -> Bool {
        try await deleteIfPresent(["operator-policies", vhost, name], operation: "DELETE operator policy")
    }

    /// Every operator policy on the broker, in one call.
    public func operatorPolicies() async throws -> [PolicyInfo] {
        try await getList(["operator-policies"], operation: "GET operator policies", what: "policy list") {
            (item: JSONValue) throws(ManagementError) in try PolicyInfo(json: item)
        }
    }
}
