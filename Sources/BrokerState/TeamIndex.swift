import EnvironmentModel
internal import RabbitManagement
import WireFormat

/// Which environments each team has: one small document per team, in the global runtime
/// parameter `warren.team.{team}` (`{"environments": [names]}`).
///
/// The team quota and a team's list must cost the same whatever the number of other teams'
/// environments, and the broker has no cheap "vhosts whose names start with X": RabbitMQ 4.x
/// answers every paginated vhost listing with a 500, and where a filtered page works the
/// broker builds the whole listing first anyway (on 4.3 with 2,000 vhosts a filtered page
/// took about as long as the whole 3 MB listing, half a second). One global parameter is
/// read by name in about a millisecond. Only administrators can read or write global
/// parameters: no tenant credential reaches the index.
///
/// The index lists at least every vhost of the team. A name goes in, under the team's lock,
/// before its vhost is made (this is where the quota holds: a create past it is refused
/// before anything exists, and racing creates on any number of instances take their turns at
/// the lock), and comes out after its vhost is gone. A crash in between leaves a name without
/// a vhost, which counts against the quota until the janitor, having seen it so for the
/// grace, takes it out. A vhost the index misses (made before there was an index) is put in
/// by the janitor's next sweep, and a team's index is built from the vhost listing the first
/// time it is needed.
package struct TeamIndex: Sendable {
    let session: BrokerSession

    package init(session: BrokerSession) { self.session = session }

    package static let parameterPrefix = "warren.team."

    static func parameterName(team: String) -> String { parameterPrefix + team }

    /// The names a stored index lists; nil when `value` is not an index. Entries that are not
    /// environment names are left out (and dropped at the next write).
    package static func names(in value: JSONValue) -> [String]? {
        guard case .object(let fields) = value, case .array(let items)? = fields["environments"] else { return nil }
        var seen = Set<String>()
        return items.compactMap { item in
            guard case .string(let name) = item, NameRules.checkEnvironmentName(name) == nil, seen.insert(name).inserted else { return nil }
            return name
        }
    }

    private var admin: any BrokerAdmin { session.admin }

    /// The names the team's index lists; nil when the team has none yet.
    package func read(team: String) async throws -> [String]? {
        let value = try await session.step("read team index") { try await admin.globalParameter(Self.parameterName(team: team)) }
        return value.flatMap(Self.names(in:))
    }

    /// Puts `name` in the team's index unless the team has `limit` environments listed
    /// already: then `quotaExceeded`, and nothing changes. A name listed already is fine.
    func reserve(team: String, name: String, limit: Int) async throws {
        try await change(team: team, outwaitingADeadHolder: true) { names in
            guard !names.contains(name) else { return }
            guard names.count < limit else { throw ProvisioningError.quotaExceeded(team: team, limit: limit) }
            names.append(name)
        }
    }

    /// Takes `name` out of the team's index. Best effort: a name left behind only counts
    /// against the quota until the janitor takes it out.
    func release(team: String, name: String) async {
        do {
            try await change(team: team) { names in names.removeAll { $0 == name } }
        } catch {
            session.logger.warning("team index not updated; the janitor will", metadata: [
                "team": "\(team)", "name": "\(name)", "error": "\(error)",
            ])
        }
    }

    /// The janitor's repair: adds `missing` names (their vhosts were listed) and removes
    /// `stale` ones (no vhost for the grace). Each vhost is looked up again under the team's
    /// lock first: a delete takes its name out under that lock once its vhost is gone, so a
    /// vhost listed a moment ago and gone now is not put back. Returns how many names changed.
    package func repair(team: String, adding missing: Set<String>, removing stale: Set<String>) async throws -> Int {
        let admin = admin
        var changed = 0
        try await change(team: team) { names in
            for name in stale.sorted() where names.contains(name) {
                let vhost = EnvironmentNaming.vhost(team: team, name: name)
                guard try await session.step("read vhost", { try await admin.vhost(vhost) }) == nil else { continue }
                names.removeAll { $0 == name }
                changed += 1
            }
            for name in missing.sorted() where !names.contains(name) {
                let vhost = EnvironmentNaming.vhost(team: team, name: name)
                guard try await session.step("read vhost", { try await admin.vhost(vhost) }) != nil else { continue }
                names.append(name)
                changed += 1
            }
        }
        return changed
    }

    /// Reads the index under the team's lock (building it from the vhost listing when the team
    /// has none yet), applies `body`, and writes it back when anything changed.
    ///
    /// Every create of the team takes this lock in turn, for four management calls, so a burst
    /// of a team's creates queues here, and one holder that died (or whose release was lost)
    /// holds up the whole team until the lock's lease runs out: the wait outlasts a lease, so
    /// creates wait it out rather than answer 503. A create waits here while it holds its own
    /// record's lock, whose lease is as long: in that rare case another operation on that one
    /// environment may take the record's lock before the create is done (a create racing
    /// another create or a delete of the same name then falls back on the claim).
    /// A release or a repair is best effort and waits only as long as for a record's lock.
    private func change(team: String, outwaitingADeadHolder: Bool = false, _ body: (inout [String]) async throws -> Void) async throws {
        var lock = RecordLock(session: session)
        if outwaitingADeadHolder { lock.wait = session.recordLockLease + .seconds(1) }
        try await lock.withLock("team.\(team)") {
            let stored = try await read(team: team)
            var names: [String]
            if let stored { names = stored } else { names = try await built(team: team) }
            let before = stored
            try await body(&names)
            guard names != before else { return }
            let value: JSONValue = ["environments": .array(names.map(JSONValue.string))]
            try await session.step("write team index") {
                try await admin.putGlobalParameter(Self.parameterName(team: team), value: value)
            }
        }
    }

    /// The team's environments as the vhost listing has them: once per team, for a broker
    /// whose environments were made before there was an index.
    private func built(team: String) async throws -> [String] {
        let prefix = EnvironmentNaming.teamPrefix(team)
        return try await session.step("list vhosts") { try await admin.vhosts() }
            .compactMap { info in
                guard info.name.utf8.starts(with: prefix.utf8), let owner = EnvironmentNaming.parse(vhost: info.name) else { return nil }
                return owner.name
            }
            .sorted()
    }
}
