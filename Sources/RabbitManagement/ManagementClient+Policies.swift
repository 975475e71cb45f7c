import WireFormat

/// Policies: settings the broker applies to matching queues, and re-applies in place when the
/// policy changes (unlike queue arguments, fixed at declaration).
extension ManagementClient {
    /// Creates (201) or replaces (204) a policy. The broker refuses an empty definition (400).
    public func putPolicy(
        vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int = 0, applyTo: String = "queues"
    ) async throws {
        let body: JSONValue = [
            "pattern": .string(pattern), "definition": .object(definition), "priority": .int(priority), "apply-to": .string(applyTo),
        ]
        _ = try await send("PUT", ["policies", vhost, name], query: [], body: body, operation: "PUT policy")
    }

    /// False when there was no such policy (404).
    public func deletePolicy(vhost: String, name: String) async throws -> Bool {
        try await deleteIfPresent(["policies", vhost, name], operation: "DELETE policy")
    }
}
