import FoundationEssentials

/// What Warren remembers about an environment, kept in its vhost's description on the broker
/// (the broker is the source of truth: a restarted Warren, or a second one, reads the same).
/// Per-environment data goes in the description, not in vhost tags: tags are Erlang atoms that
/// the broker never frees.
public struct EnvironmentRecord: Sendable, Hashable, Codable {
    /// `creating` from the first write until every part exists; then `ready`; `deleting` from
    /// the start of a DELETE. The janitor removes environments left `creating` by a crash and
    /// finishes those left `deleting` (see `Janitor`); a `ready` one that loses a part later is
    /// drift, reported and repaired, never swept.
    public enum State: String, Sendable, Hashable, Codable {
        case creating, ready, deleting
    }

    /// Format version, so a later Warren can read what an earlier one wrote.
    public var format: Int
    public var team: String
    public var spec: EnvironmentSpec
    /// RFC 3339 UTC time of the first create.
    public var createdAt: String
    public var state: State
    /// The claim queue's hash, fixed at creation: later changes to the spec (queues added in
    /// place) must not make the claim look like another spec's.
    public var claim: Int
    /// Users to revoke, with the RFC 3339 time when (see `Provisioner.issueCredentials`).
    public var revocations: [String: String]

    /// The one vhost tag Warren sets: few distinct values keep the broker's atom table small.
    public static let vhostTag = "warren"

    public init(team: String, spec: EnvironmentSpec, createdAt: String, state: State = .creating) {
        self.format = 1
        self.team = team
        self.spec = spec
        self.createdAt = createdAt
        self.state = state
        self.claim = Claim.specHash(spec)
        self.revocations = [:]
    }

    enum CodingKeys: String, CodingKey {
        case format = "warren_format"
        case team, spec, state, claim, revocations
        case createdAt = "created_at"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        format = try container.decode(Int.self, forKey: .format)
        team = try container.decode(String.self, forKey: .team)
        spec = try container.decode(EnvironmentSpec.self, forKey: .spec)
        createdAt = try container.decode(String.self, forKey: .createdAt)
        state = try container.decodeIfPresent(State.self, forKey: .state) ?? .ready
        claim = try container.decodeIfPresent(Int.self, forKey: .claim) ?? Claim.specHash(spec)
        revocations = try container.decodeIfPresent([String: String].self, forKey: .revocations) ?? [:]
    }

    /// Seconds since `createdAt`, or nil when it does not parse.
    public func age(now: Date = .now) -> Double? {
        guard let created = try? Date(createdAt, strategy: .iso8601) else { return nil }
        return now.timeIntervalSince(created)
    }

    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and enums cannot fail.
        let data = (try? encoder.encode(self)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// The record in a vhost description, or nil when the vhost was not made by Warren.
    public static func decode(description: String?) -> EnvironmentRecord? {
        guard let description, description.hasPrefix("{") else { return nil }
        return try? JSONDecoder().decode(EnvironmentRecord.self, from: Data(description.utf8))
    }

    public static func now() -> String {
        Date.now.formatted(.iso8601)
    }
}
