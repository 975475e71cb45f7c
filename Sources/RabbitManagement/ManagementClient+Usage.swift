import WireFormat

/// What the broker's nodes and tenants use right now: alarms, memory and disk, and per vhost
/// connections, queues and bytes. Statistics lag by the broker's stats interval (5 s default).
extension ManagementClient {
    /// Each node's alarms and resources (one call, a few columns).
    public func nodes() async throws -> [NodeInfo] {
        try await getList(
            ["nodes"], query: [("columns", "name,mem_alarm,disk_free_alarm,mem_used,mem_limit,disk_free,disk_free_limit")],
            operation: "GET nodes", what: "node list"
        ) { (item: JSONValue) throws(ManagementError) in try NodeInfo(json: item) }
    }

    /// Queues, ready and unacknowledged messages and their bytes, summed per vhost: one listing
    /// of every queue, read element by element, only the columns needed.
    public func queueTotals() async throws -> [String: QueueTotals] {
        var totals: [String: QueueTotals] = [:]
        let rows = try await getList(
            ["queues"], query: [("columns", "vhost,messages,message_bytes")], operation: "GET queues", what: "queue list"
        ) { (item: JSONValue) throws(ManagementError) -> (String, Int, Int) in
            let fields = try JSONFields(item, what: "queue")
            return (try fields.string("vhost"), fields.int("messages") ?? 0, fields.int("message_bytes") ?? 0)
        }
        for (vhost, messages, bytes) in rows {
            totals[vhost, default: QueueTotals()].queues += 1
            totals[vhost, default: QueueTotals()].messages += messages
            totals[vhost, default: QueueTotals()].messageBytes += bytes
        }
        return totals
    }

    /// Open client connections per vhost.
    public func connectionCounts() async throws -> [String: Int] {
        let vhosts = try await getList(
            ["connections"], query: [("columns", "vhost")], operation: "GET connections", what: "connection list"
        ) { (item: JSONValue) throws(ManagementError) -> String in try JSONFields(item, what: "connection").string("vhost") }
        var counts: [String: Int] = [:]
        for vhost in vhosts { counts[vhost, default: 0] += 1 }
        return counts
    }
}

extension ManagementClient {
    /// Every queue of one vhost with its counts and rates, from one listing of that vhost
    /// (`GET /api/queues/{vhost}`), only the columns `QueueStatistics` reads, read element by
    /// element and bounded like every answer (`maxResponseBytes`); the vhost's `max-queues`
    /// limit bounds how many there are. Statistics are wanted, so `disable_stats` is not set.
    /// Nil when there is no such vhost.
    public func queueStatistics(vhost: String) async throws -> [QueueStatistics]? {
        do {
            return try await getList(
                ["queues", vhost], query: [("columns", QueueStatistics.columns)], operation: "GET queues of a vhost",
                what: "queue list"
            ) { (item: JSONValue) throws(ManagementError) in try QueueStatistics(json: item) }
        } catch let error as ManagementError where error.code == .notFound {
            return nil
        }
    }
}
