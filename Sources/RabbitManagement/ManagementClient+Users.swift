import WireFormat
/// Users, their permissions and limits.
extension ManagementClient {
    public func user(_ name: String) async throws -> UserInfo? {
        guard let json = try await getIfPresent(["users", name], operation: "GET user") else { return nil }
        return try UserInfo(json: json)
    }

    /// The user's password hash (`RabbitPasswordHash` form when Warren made it), nil when
    /// there is no such user or it has no password.
    public func passwordHash(ofUser name: String) async throws -> String? {
        guard let json = try await getIfPresent(["users", name], operation: "GET user") else { return nil }
        guard case .string(let hash)? = json["password_hash"], !hash.isEmpty else { return nil }
        return hash
    }

    /// Only name and tags: the full listing also carries every password hash.
    public func users() async throws -> [UserInfo] {
        try await getList(["users"], query: [("columns", "name,tags")], operation: "GET users", what: "user list") {
            (item: JSONValue) throws(ManagementError) in try UserInfo(json: item)
        }
    }

    /// Creates or updates a user with a `RabbitPasswordHash` value. There is deliberately no way
    /// to PUT a user without a hash: the broker then clears the password. The body is never
    /// logged (no request body is).
    public func putUser(_ name: String, passwordHash: String, tags: [String]) async throws {
        guard !passwordHash.isEmpty else {
            throw ManagementError(code: .invalidRequest, summary: "a user needs a password hash")
        }
        let body: JSONValue = [
            "password_hash": .string(passwordHash),
            "hashing_algorithm": .string(RabbitPasswordHash.algorithm),
            // Mandatory (may be empty); the comma-joined form is read by 3.x and 4.x alike.
            "tags": .string(try Self.validatedTags(tags).joined(separator: ",")),
        ]
        _ = try await send("PUT", ["users", name], query: [], body: body, operation: "PUT user")
    }

    /// Users with no permissions on any vhost (name and tags): the candidates for orphans,
    /// listed without reading every user on the broker.
    public func usersWithoutPermissions() async throws -> [UserInfo] {
        try await getList(["users", "without-permissions"], operation: "GET users without permissions", what: "user list") {
            (item: JSONValue) throws(ManagementError) in try UserInfo(json: item)
        }
    }

    /// Deletes several users in one call (`POST /api/users/bulk-delete`). RabbitMQ 4.x skips
    /// names that do not exist; 3.10 answers 400 `no_such_user` at the first one, having deleted
    /// the names before it and not those after (callers finish such a batch one by one).
    /// Callers keep each batch small: the broker deletes them one after the other in the call.
    public func deleteUsers(_ names: [String]) async throws {
        guard !names.isEmpty else { return }
        _ = try await send("POST", ["users", "bulk-delete"], query: [], body: ["users": .array(names.map { .string($0) })],
                           operation: "POST users bulk-delete")
    }

    /// False if the user was absent.
    public func deleteUser(_ name: String) async throws -> Bool {
        try await deleteIfPresent(["users", name], operation: "DELETE user")
    }

    /// Regexes for configure/write/read. An absent vhost or user is a 400
    /// (`vhost_or_user_not_found`), not a 404.
    public func putPermissions(vhost: String, user: String, configure: String, write: String, read: String) async throws {
        let body: JSONValue = ["configure": .string(configure), "write": .string(write), "read": .string(read)]
        _ = try await send("PUT", ["permissions", vhost, user], query: [], body: body, operation: "PUT permissions")
    }

    /// Which routing keys the user may publish to (`write`) and bind from (`read`) on one topic
    /// exchange, as regexes; the broker checks them on topic exchanges only. A user with none
    /// on an exchange may use every key there.
    public func putTopicPermission(vhost: String, user: String, exchange: String, write: String, read: String) async throws {
        let body: JSONValue = ["exchange": .string(exchange), "write": .string(write), "read": .string(read)]
        _ = try await send("PUT", ["topic-permissions", vhost, user], query: [], body: body, operation: "PUT topic permissions")
    }

    public func permissions(vhost: String) async throws -> [PermissionInfo] {
        let json = try await get(["vhosts", vhost, "permissions"], operation: "GET vhost permissions")
        return try decodeList(json, what: "permission list") { (item: JSONValue) throws(ManagementError) in
            try PermissionInfo(json: item)
        }
    }

    /// Every user's permissions on every vhost, in one call.
    public func permissions() async throws -> [PermissionInfo] {
        try await getList(["permissions"], operation: "GET permissions", what: "permission list") {
            (item: JSONValue) throws(ManagementError) in try PermissionInfo(json: item)
        }
    }
}
