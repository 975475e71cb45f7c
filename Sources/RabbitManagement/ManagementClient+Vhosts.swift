import WireFormat
/// Cluster identity and virtual hosts.
extension ManagementClient {
    /// `GET /api/overview?disable_stats=true`: cheap (a few ms), so it doubles as a liveness probe.
    public func overview() async throws -> Overview {
        try Overview(json: try await get(["overview"], query: [("disable_stats", "true")], operation: "GET overview"))
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
        let json = try await get(
            ["vhosts"], query: [("columns", "name,description,tags,cluster_state,default_queue_type")],
            operation: "GET vhosts")
        // As in `countVhosts`: an item without a name is a vhost deleted mid-listing.
        return try decodeList(json, what: "vhost list") { (item: JSONValue) throws(ManagementError) -> VhostInfo? in
            guard case .object(let fields) = item, fields["name"] != nil else { return nil }
            return try VhostInfo(json: item)
        }.compactMap { $0 }
    }

    /// How many vhosts have names starting with `prefix`, counted by the broker: one page of
    /// one name comes back, whatever the number of vhosts (a quota check on every create must
    /// not grow with the broker).
    ///
    /// RabbitMQ 4.0.5 and 4.3.6 answer every paginated vhost listing with an empty 500 (their log:
    /// `function_clause` in `rabbit_queue_type:inject_dqt`), so on a 4.x broker whose paged listing
    /// fails the count falls back to the whole listing, filtered here, and remembers that for
    /// the client's lifetime (one failed call per process, not per create). A 500 from a 3.x
    /// broker is an error as before.
    public func countVhosts(prefix: String) async throws -> Int {
        if !core.vhostPagesFail.load(ordering: .relaxed) {
            do {
                return try await countVhostsByPage(prefix: prefix)
            } catch let error as ManagementError where error.status == 500 {
                guard Self.majorVersion(try await overview().rabbitmqVersion) ?? 0 >= 4 else { throw error }
                core.vhostPagesFail.store(true, ordering: .relaxed)
                logger.notice("paginated vhost listing fails on this broker; counting vhosts from the full listing")
            }
        }
        // 4.x ignores `columns` here and sends whole vhosts; 3.x honours it.
        let json = try await get(["vhosts"], query: [("columns", "name")], operation: "GET vhosts")
        // An item without a name is a vhost deleted while the listing was rendered (seen on
        // 4.3 under racing creates and rollbacks): not counted.
        let names = try decodeList(json, what: "vhost list") { (item: JSONValue) throws(ManagementError) -> String? in
            guard case .object(let fields) = item, case .string(let name) = fields["name"] else { return nil }
            return name
        }.compactMap { $0 }
        // Byte-wise, as the broker's regex compares: Swift's hasPrefix would equate canonically
        // equivalent Unicode spellings that are different vhost names.
        return names.count { $0.utf8.starts(with: prefix.utf8) }
    }

    private func countVhostsByPage(prefix: String) async throws -> Int {
        let json = try await get(
            ["vhosts"],
            query: [("page", "1"), ("page_size", "1"), ("name", "^" + Self.regexLiteral(prefix)), ("use_regex", "true"), ("columns", "name")],
            operation: "GET vhosts")
        guard case .object(let page) = json, case .int(let count) = page["filtered_count"] else {
            throw ManagementError(code: .invalidResponse, summary: "management API returned an unexpected vhost page")
        }
        return count
    }

    /// "4.0.5" -> 4; nil when the version does not start with a number.
    static func majorVersion(_ version: String) -> Int? {
        Int(version.prefix { $0.isASCII && $0.isNumber })
    }

    /// `text` as a literal in the broker's (PCRE) regex: every non-alphanumeric escaped.
    static func regexLiteral(_ text: String) -> String {
        var out = ""
        for character in text {
            if !(character.isASCII && (character.isLetter || character.isNumber)) { out.append("\\") }
            out.append(character)
        }
        return out
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

    /// `max-queues` or `max-connections`; -1 removes the limit.
    public func putVhostLimit(vhost: String, name: String, value: Int) async throws {
        _ = try await send("PUT", ["vhost-limits", vhost, name], query: [], body: ["value": .int(value)],
                           operation: "PUT vhost limit")
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
