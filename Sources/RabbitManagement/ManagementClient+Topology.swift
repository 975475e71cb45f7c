import WireFormat
/// Exchanges, queues and bindings inside a vhost.
///
/// `durable` is always sent: the broker defaults it to false when left out.
extension ManagementClient {
    /// A repeat with other settings is a 400 (inequivalent arg); the same settings, a 204.
    public func putExchange(
        vhost: String, name: String, type: String, durable: Bool, autoDelete: Bool = false,
        arguments: [String: JSONValue] = [:]
    ) async throws {
        let body: JSONValue = [
            "type": .string(type), "durable": .bool(durable), "auto_delete": .bool(autoDelete),
            "internal": false, "arguments": .object(arguments),
        ]
        _ = try await send("PUT", ["exchanges", vhost, name], query: [], body: body, operation: "PUT exchange")
    }

    public func exchange(vhost: String, name: String) async throws -> ExchangeInfo? {
        guard let json = try await getIfPresent(["exchanges", vhost, name], operation: "GET exchange") else { return nil }
        return try ExchangeInfo(json: json)
    }


    /// Quorum queues: `arguments: ["x-queue-type": "quorum"]`, durable, not auto-delete.
    public func putQueue(
        vhost: String, name: String, durable: Bool, autoDelete: Bool = false, arguments: [String: JSONValue] = [:]
    ) async throws {
        let body: JSONValue = ["durable": .bool(durable), "auto_delete": .bool(autoDelete), "arguments": .object(arguments)]
        _ = try await send("PUT", ["queues", vhost, name], query: [], body: body, operation: "PUT queue")
    }

    public func queue(vhost: String, name: String) async throws -> QueueInfo? {
        guard let json = try await getIfPresent(["queues", vhost, name], operation: "GET queue") else { return nil }
        return try QueueInfo(json: json)
    }

    public func deleteQueue(vhost: String, name: String) async throws -> Bool {
        try await deleteIfPresent(["queues", vhost, name], operation: "DELETE queue")
    }

    /// Deletes the classic queue only if it holds no message at this moment, as the queue
    /// itself counts (not the statistics, which lag by seconds). `.empty` when it was deleted
    /// (or absent), `.notEmpty` when the broker refused because it holds messages. Quorum
    /// queues refuse the if-empty flag altogether (400): see `holdsMessages`.
    public func deleteQueueIfEmpty(vhost: String, name: String) async throws -> QueueDeletion {
        do {
            _ = try await send("DELETE", ["queues", vhost, name], query: [("if-empty", "true")], body: nil,
                               operation: "DELETE queue if empty")
            return .empty
        } catch let error as ManagementError where error.code == .notFound {
            return .empty
        } catch let error as ManagementError where error.code == .badRequest && error.brokerReason?.contains("not empty") == true {
            return .notEmpty
        }
    }

    /// Whether the queue holds a message right now, asked of the queue itself: one message is
    /// fetched and at once requeued (`reject_requeue_true`), so it stays, marked redelivered
    /// (for a quorum queue the return also counts as one delivery). The only exact count the
    /// management API gives for a quorum queue.
    public func holdsMessages(vhost: String, name: String) async throws -> Bool {
        let body: JSONValue = ["count": 1, "ackmode": "reject_requeue_true", "encoding": "auto", "truncate": 1]
        let json = try await send("POST", ["queues", vhost, name, "get"], query: [], body: body, operation: "POST queue get").json()
        guard case .array(let messages) = json else {
            throw ManagementError(code: .invalidResponse, summary: "management API answered POST queue get with no list")
        }
        return !messages.isEmpty
    }

    /// Binds queue to exchange. Repeating it creates no duplicate (201 again).
    public func bind(
        vhost: String, exchange: String, queue: String, routingKey: String, arguments: [String: JSONValue] = [:]
    ) async throws {
        let body: JSONValue = ["routing_key": .string(routingKey), "arguments": .object(arguments)]
        _ = try await send("POST", ["bindings", vhost, "e", exchange, "q", queue], query: [], body: body,
                           operation: "POST binding")
    }

    public func bindings(vhost: String, exchange: String, queue: String) async throws -> [BindingInfo] {
        let json = try await get(["bindings", vhost, "e", exchange, "q", queue], operation: "GET bindings")
        return try decodeList(json, what: "binding list") { (item: JSONValue) throws(ManagementError) in
            try BindingInfo(json: item)
        }
    }

}

/// What `deleteQueueIfEmpty` found.
public enum QueueDeletion: Sendable, Hashable {
    case empty, notEmpty
}
