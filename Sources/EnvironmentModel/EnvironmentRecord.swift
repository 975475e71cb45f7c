import Crypto
import FoundationEssentials

/// What Warren remembers about an environment, kept in its vhost's description on the broker
/// (the broker is the source of truth: a restarted Warren, or a second one, reads the same).
/// Per-environment data goes in the description, not in vhost tags: tags are Erlang atoms that
/// the broker never frees.
public struct EnvironmentRecord: Sendable, Hashable, Codable {
    /// `creating` from the first write until every part exists; then `ready`; `deleting` from
    /// the start of a DELETE. `failed` when a create that answered before it finished (an
    /// asynchronous one) could not finish: `failureReason` says why, its users are gone, and
    /// the vhost stays for its owner to see until a DELETE (or the janitor, after the grace)
    /// removes it. The janitor removes environments left `creating` by a crash and finishes
    /// those left `deleting` (see `Janitor`); a `ready` one that loses a part later is drift,
    /// reported and repaired, never swept.
    public enum State: String, Sendable, Hashable, Codable {
        case creating, ready, deleting, failed
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
    /// Which life of the name this is: 8 random hex digits fixed by the create that made the
    /// vhost, and the start of every user name it issues ("{vhost}.{incarnation}{8 hex}").
    /// An operation that began on an earlier incarnation of the same name changes nothing of a
    /// later one. Empty for records written before incarnations existed.
    public var incarnation: String
    /// Why an asynchronous create failed (state `failed`).
    public var failureReason: String?
    /// The platform instance this environment is, when an Open Service Broker platform
    /// provisioned it (see `PlatformInstance`).
    public var platform: PlatformInstance?
    /// The blueprint whose ceilings the environment has (a tier the operator gave more, or
    /// less, than the global ceilings); nil for the global ones.
    public var tier: String?

    /// The one vhost tag Warren sets: few distinct values keep the broker's atom table small.
    public static let vhostTag = "warren"

    public init(team: String, spec: EnvironmentSpec, createdAt: String, state: State = .creating, incarnation: String = EnvironmentNaming.newIncarnation()) {
        self.format = 1
        self.incarnation = incarnation
        self.team = team
        self.spec = spec
        self.createdAt = createdAt
        self.state = state
        self.claim = Self.claimHash(of: spec)
        self.revocations = [:]
    }

    enum CodingKeys: String, CodingKey {
        case format = "warren_format"
        case team, spec, state, claim, revocations, incarnation
        case createdAt = "created_at"
        case failureReason = "failure_reason"
        case platform, tier
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        format = try container.decode(Int.self, forKey: .format)
        team = try container.decode(String.self, forKey: .team)
        spec = try container.decode(EnvironmentSpec.self, forKey: .spec)
        createdAt = try container.decode(String.self, forKey: .createdAt)
        state = try container.decodeIfPresent(State.self, forKey: .state) ?? .ready
        claim = try container.decodeIfPresent(Int.self, forKey: .claim) ?? Self.claimHash(of: spec)
        revocations = try container.decodeIfPresent([String: String].self, forKey: .revocations) ?? [:]
        incarnation = try container.decodeIfPresent(String.self, forKey: .incarnation) ?? ""
        failureReason = try container.decodeIfPresent(String.self, forKey: .failureReason)
        platform = try container.decodeIfPresent(PlatformInstance.self, forKey: .platform)
        tier = try container.decodeIfPresent(String.self, forKey: .tier)
    }

    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and enums cannot fail.
        let data = (try? encoder.encode(self)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// The record in a vhost description, or nil when the vhost was not made by Warren.
    /// Decoding is not trusting: see `problem(in:)`.
    package static func decode(description: String?) -> EnvironmentRecord? {
        guard let description, description.hasPrefix("{") else { return nil }
        return try? JSONDecoder().decode(EnvironmentRecord.self, from: Data(description.utf8))
    }

    /// Why this record may not be acted on as the record of the environment whose vhost is
    /// `vhost`, or nil when it may. A record is checked wherever it was read from: its team and
    /// name must be those the vhost's name says, its spec as valid as a request body's, its
    /// incarnation well formed, and every user it would revoke one of this environment's.
    /// Nothing Warren deletes or revokes is decided from a record that fails this.
    package func problem(in vhost: String) -> String? {
        guard format == 1 else { return "record format \(format) is unknown" }
        guard let owner = EnvironmentNaming.parse(vhost: vhost), owner.team == team, owner.name == spec.name else {
            return "record names team \(team) and environment \(spec.name), not those of its vhost"
        }
        if let invalid = spec.validate().first { return "record spec is invalid: \(invalid.field) \(invalid.reason)" }
        guard incarnation.isEmpty || EnvironmentNaming.isIncarnation(incarnation) else { return "record incarnation is malformed" }
        for user in revocations.keys where !EnvironmentNaming.isUser(user, of: vhost, incarnation: incarnation) {
            return "record schedules the revocation of a user that is not this environment's"
        }
        if let reason = failureReason, reason.utf8.count > 1024 { return "record failure reason is too long" }
        if let platform, let problem = platform.problem { return "record platform instance is invalid: \(problem)" }
        if let tier, NameRules.checkEnvironmentName(tier) != nil { return "record tier is not a blueprint's name" }
        return nil
    }

    public static func now() -> String {
        Date.now.formatted(.iso8601)
    }

    /// The claim's value for a spec (see the claim queue in `Claim`): 48 bits of SHA-256 over
    /// the spec's canonical JSON, a positive Int the broker keeps exactly.
    static func claimHash(of spec: EnvironmentSpec) -> Int {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = (try? encoder.encode(spec)) ?? Data()
        let digest = Array(SHA256.hash(data: json))
        return digest.prefix(6).reduce(0) { $0 << 8 | Int($1) }
    }
}
