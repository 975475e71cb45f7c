import Foundation
import WarrenClient

/// What the human output shows of an environment, from either of the answers that describe one
/// (a create's, or a GET's and a PATCH's): the same lines for both, plus what only one has.
struct EnvironmentText {
    typealias Schemas = Components.Schemas

    var name: String
    var team: String
    var status: Schemas.EnvironmentStatus?
    var createdAt: Date
    var vhost: String
    var exchange: Schemas.Exchange
    var queues: [Schemas.Queue]
    var bindings: [Schemas.Binding]
    var limits: Schemas.LimitsInForce?
    var notes: [String]
    var connection: Schemas.Connection
    var platform: Schemas.PlatformInstance?
    var protected: Bool
    var missing: [Schemas.ResourceKind] = []
    var reason: String?
    /// (username, role) of every user, a GET's only.
    var users: [(String, Schemas.Role?)] = []
    var revocations: [String: Date] = [:]

    init(_ environment: Schemas.Environment) {
        name = environment.name
        team = environment.team
        status = environment.status
        createdAt = environment.created_at
        vhost = environment.vhost
        exchange = environment.exchange
        queues = environment.queues ?? [environment.queue]
        bindings = environment.bindings
            ?? [.init(queue: environment.queue.name, routing_key: environment.routing_key)]
        limits = environment.limits
        notes = environment.notes ?? []
        connection = environment.connection
        platform = environment.platform
        protected = environment.protected
        missing = environment.missing
        reason = environment.reason
        let roles = environment.user_roles?.additionalProperties ?? [:]
        users = environment.users.map { ($0, roles[$0]) }
        revocations = environment.revocations?.additionalProperties ?? [:]
    }

    init(_ created: Schemas.EnvironmentCreated) {
        name = created.name
        team = created.team
        status = created.status
        createdAt = created.created_at
        vhost = created.vhost
        exchange = created.exchange
        queues = created.queues ?? [created.queue]
        bindings = created.bindings ?? [.init(queue: created.queue.name, routing_key: created.routing_key)]
        limits = created.limits
        notes = created.notes ?? []
        connection = created.connection
        platform = created.platform
        protected = created.protected
    }

    var lines: [String] {
        var pairs: [(String, String)] = [
            ("name", name),
            ("team", team),
            ("status", status?.rawValue ?? "-"),
        ]
        if let reason { pairs.append(("reason", reason)) }
        if !missing.isEmpty {
            pairs.append(("missing", missing.map(\.rawValue).joined(separator: ", ")
                          + " (warren-cli create with the same spec, or the reconcile call, repairs it)"))
        }
        pairs.append(("created", Output.timestamp(createdAt)))
        pairs.append(("protected", protected ? "yes (delete is refused until `warren-cli patch \(name) --unprotect`)" : "no"))
        pairs.append(("vhost", vhost))
        pairs.append(("exchange", "\(exchange.name) (\(exchange._type.rawValue))"))
        if let limits { pairs.append(("limits", Self.describe(limits))) }
        if let platform {
            pairs.append(("platform", "\(platform.platform) (instance \(platform.instance_id), plan \(platform.plan_id))"))
        }
        var lines = Output.fields(pairs)
        for note in notes { lines.append("note: \(note)") }

        lines.append("")
        lines.append("queues:")
        lines += Output.table(
            ["NAME", "TYPE", "DEAD-LETTER QUEUE", "SETTINGS"],
            queues.map { [$0.name, $0._type.rawValue, $0.dead_letter_queue ?? "-", Self.settings(of: $0)] },
            indent: "  ")
        lines.append("")
        lines.append("bindings (exchange \(exchange.name)):")
        lines += Output.table(
            ["QUEUE", "ROUTING KEY", "ARGUMENTS"],
            bindings.map { [$0.queue, Self.routingKey($0.routing_key), Self.arguments(of: $0)] },
            indent: "  ")

        if !users.isEmpty {
            lines.append("")
            lines.append("users:")
            lines += Output.table(
                ["USERNAME", "ROLE", "REVOKED AT"],
                users.map { user, role in
                    [user, role ?? "-", revocations[user].map(Output.timestamp) ?? "-"]
                },
                indent: "  ")
        }

        lines.append("")
        lines += Self.connectionLines(connection)
        return lines
    }

    static func connectionLines(_ connection: Schemas.Connection) -> [String] {
        ["connection:"] + Output.fields(
            [
                ("host", connection.host),
                ("port", String(connection.port)),
                ("vhost", connection.vhost),
                ("uri", Output.withoutCredentials(connection.uri)),
            ], indent: "  ")
    }

    static func credentialLines(_ title: String, _ credentials: Schemas.Credentials) -> [String] {
        [title + ":"] + Output.fields(
            [("username", credentials.username), ("password", credentials.password)], indent: "  ")
    }

    static func routingKey(_ key: String?) -> String {
        guard let key else { return "-" }
        return key.isEmpty ? "(empty)" : key
    }

    static func settings(of queue: Schemas.Queue) -> String {
        var settings: [String] = []
        if let value = queue.delivery_limit { settings.append("delivery_limit=\(value)") }
        if let value = queue.message_ttl_ms { settings.append("message_ttl_ms=\(value)") }
        if let value = queue.max_length { settings.append("max_length=\(value)") }
        if let value = queue.overflow { settings.append("overflow=\(value)") }
        if let value = queue.single_active_consumer, value { settings.append("single_active_consumer") }
        if let value = queue.max_priority { settings.append("max_priority=\(value)") }
        if let value = queue.consumer_timeout_ms { settings.append("consumer_timeout_ms=\(value)") }
        return settings.isEmpty ? "-" : settings.joined(separator: " ")
    }

    static func arguments(of binding: Schemas.Binding) -> String {
        guard let arguments = binding.arguments else { return "-" }
        var parts: [String] = []
        if let match = arguments.x_hyphen_match { parts.append("x-match=\(match.rawValue)") }
        parts += arguments.additionalProperties.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return parts.isEmpty ? "-" : parts.joined(separator: " ")
    }

    static func describe(_ limits: Schemas.LimitsInForce) -> String {
        "connections \(limits.max_connections), queues \(limits.max_queues), bytes \(limits.max_bytes)"
            + " (\(limits.max_queue_bytes) per queue), messages per queue \(limits.max_queue_length),"
            + " users \(limits.max_users) (each \(limits.max_user_connections) connections,"
            + " \(limits.max_user_channels) channels)"
    }
}
