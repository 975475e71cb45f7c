import WireFormat
/// Exchanges, queues and bindings inside a vhost.
///
/// `durable` is always sent: the broker defaults it to false when left out.
extension ManagementClient {
    /// True when this PUT made the exchange (201). A repeat with another type, durability,
    /// auto-delete or internal flag is a 400 (inequivalent arg); otherwise a 204, even when the
    /// existing exchange has other arguments (the broker compares only `alternate-exchange`):
    /// a caller that needs the exchange exact reads it back after a 204.
    @discardableResult
    public func putExchange(
        vhost: String, name: String, type: String, durable: Bool, autoDelete: Bool = false,
        arguments: [String: JSONValue] = [:]
    ) async throws -> Bool {
        let body: JSONValue = [
            "type": .string(type), "durable": .bool(durable), "auto_delete": .bool(autoDelete),
            "internal": false, "arguments": .object(arguments),
        ]
        return try await send("PUT", ["exchanges", vhost, name], query: [], body: body, operation: "PUT exchange").status == 201
    }

    public func exchange(vhost: String, name: String) async throws -> ExchangeInfo? {
        guard let json = try await getIfPresent(["exchanges", vhost, name], operation: "GET exchange") else { return nil }
        return try ExchangeInfo(json: json)
    }

    /// Quorum queues: `arguments: ["x-queue-type": "quorum"]`, durable, not auto-delete.
    ///
    /// True when this PUT made the queue (201). A queue that exists answers 400 (inequivalent
    /// arg) when it differs in durability, auto-delete, exclusivity or an argument the broker
    /// compares, and 204 otherwise: arguments it does not compare (which ones depends on the
    /// release) can still differ, so a caller that needs the queue exact reads it back after a 204.
    @discardableResult
    public func putQueue(
        vhost: String, name: String, durable: Bool, autoDelete: Bool = false, arguments: [String: JSONValue] = [:]
    ) async throws -> Bool {
        let body: JSONValue = ["durable": .bool(durable), "auto_delete": .bool(autoDelete), "arguments": .object(arguments)]
        return try await send("PUT", ["queues", vhost, name], query: [], body: body, operation: "PUT queue").status == 201
    }

    public func queue(vhost: String, name: String) async throws -> QueueInfo? {
        guard let json = try await getIfPresent(["queues", vhost, name], operation: "GET queue") else { return nil }
        return try QueueInfo(json: json)
    }

    public func deleteQueue(vhost: String, name: String) async throws -> Bool {
        try await deleteIfPresent(["queues", vhost, name], operation: "DELETE queue")
    }

    /// Drops every ready message of the queue; false when there is no such queue.
    public func purgeQueue(vhost: String, name: String) async throws -> Bool {
        try await deleteIfPresent(["queues", vhost, name, "contents"], operation: "DELETE queue contents")
    }

    /// Whether the queue holds a message right now, asked of the queue itself: one message is
    /// fetched and at once requeued (`reject_requeue_true`), so it stays, marked redelivered
    /// (for a quorum queue the return also counts as one delivery). The statistics (`messages`)
    /// lag by seconds, and quorum queues refuse the if-empty delete.
    ///
    /// False when there is no such queue (404). After a 5xx (RabbitMQ 3.10 answers 500 now and
    /// then when the queue is declared or deleted at that moment), or a 400 whose reason is
    /// `noproc` (RabbitMQ 3.10 answers "541 Cannot get a message from queue ...: noproc" while a
    /// quorum queue just declared has no process yet: seen in 13 of 40 declarations asked at
    /// once), the queue is looked up: gone, it holds nothing; there, it is asked again after a
    /// short pause, three times within 300 ms (the fetch leaves the message in place, so asking
    /// again is safe; a queue's process starts within milliseconds, and a broker that still
    /// fails after that is failing, and the DELETE says so).
    /// Any other 400 is the caller's (RabbitMQ 4 refuses the fetch on a single-active-consumer
    /// quorum queue).
    public func holdsMessages(vhost: String, name: String) async throws -> Bool {
        var pauses: [Duration] = [.milliseconds(50), .milliseconds(100), .milliseconds(150)]
        while true {
            do {
                return try await fetchAndRequeue(vhost: vhost, name: name)
            } catch let error as ManagementError where error.code == .notFound {
                return false
            } catch let error as ManagementError where error.code == .brokerFailure || Self.isNoProcess(error) {
                guard try await queue(vhost: vhost, name: name) != nil else { return false }
                guard !pauses.isEmpty else { throw error }
                try await Task.sleep(for: pauses.removeFirst())
            }
        }
    }

    /// The 400 the broker answers a fetch from a queue whose process is not running (yet, or
    /// any more).
    static func isNoProcess(_ error: ManagementError) -> Bool {
        error.code == .badRequest && (error.brokerReason?.contains("noproc") ?? false)
    }

    private func fetchAndRequeue(vhost: String, name: String) async throws -> Bool {
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
