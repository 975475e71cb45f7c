import WireFormat
/// Cluster identity and virtual hosts.
extension ManagementClient {
    /// `GET /api/overview?disable_stats=true`: cheap (a few ms), so it doubles as a liveness probe.
    public func overview() async throws -> Overview {
        try Overview(json: try await get(["overview"], query: [("disable_stats", "true")], operation: "GET overview"))
    }

    /// The port of the node's stream protocol listener (the `rabbitmq_stream` plugin), nil
    /// when it has none. Only the listeners column: the whole overview computes statistics.
    public func streamPort() async throws -> Int? {
        let json = try await get(["overview"], query: [("columns", "listeners")], operation: "GET overview listeners")
        guard case .object(let fields) = json, case .array(let listeners)? = fields["listeners"] else { return nil }
        for case .object(let listener) in listeners where listener["protocol"] == .string("stream") {
            if let port = listener["port"]?.intValue { return port }
        }
        return nil
    }

    /// Checks the credential and returns its tags.
    public func whoami() async throws -> WhoAmI {
        try WhoAmI(json: try await get(["whoami"], operation: "GET whoami"))
    }

    public func vhost(_ name: String) async throws -> VhostInfo? {
        guard let json = try await getIfPresent(["vhosts", name], operation: "GET vhost") else { return nil }
        return try VhostInfo(json: json)
    }

    /// Only the columns `VhostInfo` needs, so the answer stays small with many vhosts.
    public func vhosts() async throws -> [VhostInfo] {
        // An item without a name is a vhost deleted while the listing was rendered (seen on
        // 4.3 under racing creates and rollbacks): left out.
        try await getList(
            ["vhosts"], query: [("columns", "name,description,tags,cluster_state,default_queue_type")],
            operation: "GET vhosts", what: "vhost list"
        ) { (item: JSONValue) throws(ManagementError) -> VhostInfo? in
            guard case .object(let fields) = item, fields["name"] != nil else { return nil }
            return try VhostInfo(json: item)
        }.compactMap { $0 }
    }

    /// Creates or updates a vhost. A repeat PUT replaces description and tags, so this always
    /// sends the full metadata. The queue type goes under both names: 3.10 reads
    /// `defaultqueuetype`, 3.11.12+ reads `default_queue_type`.
    ///
    /// The vhost is not usable the moment this returns: wait until `VhostInfo.isRunning` before
    /// declaring anything in it (Provisioner does).
    /// True when this PUT made the vhost (201), false when it only replaced its metadata (204).
    /// Advisory under racing PUTs of one new vhost (several may answer 201), exact otherwise:
    /// a record write that answers 201 has brought back a vhost that had been deleted.
    @discardableResult
    public func putVhost(_ name: String, description: String, tags: [String], defaultQueueType: String?) async throws -> Bool {
        var body: [String: JSONValue] = [
            "description": .string(description),
            "tags": .array(try Self.validatedTags(tags).map(JSONValue.string)),
        ]
        if let defaultQueueType {
            body["default_queue_type"] = .string(defaultQueueType)
            body["defaultqueuetype"] = .string(defaultQueueType)
        }
        return try await send("PUT", ["vhosts", name], query: [], body: .object(body), operation: "PUT vhost").status == 201
    }

    /// Removes the vhost and everything in it (not its users). False if it was absent.
    public func deleteVhost(_ name: String) async throws -> Bool {
        try await deleteIfPresent(["vhosts", name], operation: "DELETE vhost")
    }

    /// Protects the vhost from deletion (RabbitMQ 4.1 and later; earlier releases answer 405):
    /// until `unprotectVhost`, the broker answers a DELETE of it with 412, whoever sends it.
    /// Protecting a protected vhost is no error (204 again); an absent one is a 404.
    public func protectVhost(_ name: String) async throws {
        _ = try await send("POST", ["vhosts", name, "deletion", "protection"], query: [], body: nil, operation: "POST vhost deletion protection")
    }

    /// Lifts the vhost's deletion protection; lifting none is no error (204). False when the
    /// vhost is absent.
    @discardableResult
    public func unprotectVhost(_ name: String) async throws -> Bool {
        do {
            _ = try await send("DELETE", ["vhosts", name, "deletion", "protection"], query: [], body: nil, operation: "DELETE vhost deletion protection")
            return true
        } catch let error as ManagementError where error.code == .notFound {
            return false
        }
    }

    /// `max-queues` or `max-connections`; -1 removes the limit.
    public func putVhostLimit(vhost: String, name: String, value: Int) async throws {
        _ = try await send("PUT", ["vhost-limits", vhost, name], query: [], body: ["value": .int(value)],
                           operation: "PUT vhost limit")
    }

    /// Every limit of the vhost in one call, replacing whatever limits it had: the broker keeps
    /// a vhost's limits as one runtime parameter (component `vhost-limits`, name `limits`),
    /// which the per-name calls above edit one key at a time. Taken by 3.10, 4.0 and 4.3.
    public func putVhostLimits(vhost: String, _ limits: [String: Int]) async throws {
        let value: JSONValue = .object(limits.mapValues { .int($0) })
        _ = try await send(
            "PUT", ["parameters", "vhost-limits", vhost, "limits"], query: [],
            body: ["vhost": .string(vhost), "component": "vhost-limits", "name": "limits", "value": value],
            operation: "PUT vhost limits")
    }

    /// Tags are Erlang atoms on the broker: a comma would split one into two, and over 255
    /// characters the broker fails with an empty 500.
    static func validatedTags(_ tags: [String]) throws(ManagementError) -> [String] {
        for tag in tags where tag.isEmpty || tag.contains(",") || tag.utf8.count > 255 {
            throw ManagementError(code: .invalidRequest, summary: "tags must be 1-255 characters without commas")
        }
        return tags
    }
}
