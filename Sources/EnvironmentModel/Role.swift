package import RabbitManagement

/// What a user of an environment may do. `full` is the default; `producer` may only publish to
/// the environment's exchange; `consumer` may only consume from its queues (dead-letter queues
/// included); an agent (one of `EnvironmentSpec.agents`, by name) may publish only the routing
/// keys its patterns allow and consume only the queues it names. The narrowest permissions
/// RabbitMQ can express: "^$" matches no resource name (the default exchange is checked as
/// "amq.default", so it is refused too).
public enum Role: Sendable, Hashable {
    case full, producer, consumer
    case agent(String)

    /// The roles every environment has; an agent's name is never one of theirs.
    public static let builtIn: [Role] = [.full, .producer, .consumer]

    /// One of the built-in roles by name, or nil.
    public init?(builtIn name: String) {
        guard let role = Role.builtIn.first(where: { $0.name == name }) else { return nil }
        self = role
    }

    /// How the API names the role: "full", "producer", "consumer", or the agent's name.
    public var name: String {
        switch self {
        case .full: "full"
        case .producer: "producer"
        case .consumer: "consumer"
        case .agent(let name): name
        }
    }

    package struct Permissions: Hashable {
        package var configure: String
        package var write: String
        package var read: String
        /// An agent's routing keys on a topic exchange (RabbitMQ's topic permissions), if any.
        package var topic: TopicPermission?
    }

    /// Which routing keys a user may publish to one topic exchange (a regex).
    package struct TopicPermission: Hashable {
        package var exchange: String
        package var write: String
    }

    package func permissions(for spec: EnvironmentSpec) -> Permissions {
        switch self {
        case .full:
            // Everything but Warren's own names ("warren.claim"): a tenant can neither delete
            // nor redeclare nor bind nor read them. PCRE, anchored, with a negative lookahead.
            let all = "^(?!\(Role.escaped(EnvironmentNaming.reservedResourcePrefix))).*"
            return Permissions(configure: all, write: all, read: all)
        case .producer:
            return Permissions(configure: "^$", write: Role.producerWrite(for: spec), read: "^$")
        case .consumer:
            return Permissions(configure: "^$", write: "^$", read: Role.anyOf(spec.consumableQueues + spec.superStreamReads))
        case .agent(let name):
            // An agent unknown to the spec (removed from it) gets nothing but its mark.
            let agent = spec.agents.first { $0.name == name } ?? EnvironmentSpec.Agent(name: name)
            // The mark comes first in `write`; it matches nothing (see `agentMark`).
            let exchange = agent.publish.isEmpty ? "" : "|^\(Role.escaped(spec.exchange.name))$"
            return Permissions(
                configure: "^$", write: Role.agentMark(name) + exchange, read: agent.consume.isEmpty ? "^$" : Role.anyOf(agent.consume),
                topic: agent.publish.isEmpty ? nil : TopicPermission(exchange: spec.exchange.name, write: TopicPattern.regex(anyOf: agent.publish)))
        }
    }

    /// The role whose permissions these are (anything else with configure rights is `full`,
    /// the `.*` of environments made before Warren's names were kept out of reach included).
    package static func of(_ permission: PermissionInfo) -> Role {
        if permission.configure != "^$" { return .full }
        if let agent = agentName(inWrite: permission.write) { return .agent(agent) }
        return permission.write != "^$" ? .producer : .consumer
    }

    /// How an agent's user says which agent it is, with no call beyond the permissions listing
    /// that every reader of roles makes already: its `write` pattern starts with an alternative
    /// that can match no name, `^(?!)agent:NAME$` (`(?!)`, an empty negative lookahead, always
    /// fails). The broker compares it and finds nothing; Warren reads the name back. It sits in
    /// `write`, with `configure` left "^$", so a Warren of an earlier release takes the user for
    /// a producer (which it never widens) rather than for a full user (whose permissions its
    /// reconcile would restore to everything).
    static func agentMark(_ name: String) -> String { "^(?!)agent:\(name)$" }

    static func agentName(inWrite write: String) -> String? {
        let prefix = "^(?!)agent:"
        guard write.hasPrefix(prefix) else { return nil }
        let rest = write.dropFirst(prefix.count)
        guard let end = rest.firstIndex(of: "$") else { return nil }
        let name = String(rest[..<end])
        return EnvironmentSpec.Agent.checkName(name) == nil ? name : nil
    }

    /// A regex matching exactly the given names (none: "^$").
    static func anyOf(_ names: [String]) -> String {
        names.isEmpty ? "^$" : "^(\(names.map(Role.escaped).joined(separator: "|")))$"
    }

    /// A name as a literal in a regex: every character that is not a letter or digit gets a
    /// backslash (PCRE allows that for any such character), so "jobs.v1" matches only itself.
    package static func escaped(_ name: String) -> String {
        var out = ""
        for character in name {
            if !(character.isLetter || character.isNumber) || !character.isASCII { out.append("\\") }
            out.append(character)
        }
        return out
    }
}
