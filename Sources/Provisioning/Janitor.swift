import FoundationEssentials
import Locking
import Logging
import RabbitManagement

/// Finishes what a crash interrupted. A Warren killed in the middle of a create leaves a vhost
/// whose record still says `creating`; one killed in a delete, a record that says `deleting`;
/// one killed in a rollback, a user without its vhost. Every Warren runs a janitor (at
/// start-up, then periodically); several at once are harmless, since each step is idempotent
/// on the broker and every record change goes through the record's owner and lock.
///
/// It acts only on records that pass validation, on the vhost it found each in (never on a
/// team or name a record names), and it cannot hurt live work: a `creating` or `deleting`
/// record's age is measured on this janitor's own clock, from when it first saw that
/// incarnation in that state, and the grace is longer than any create can last (the
/// executable refuses a shorter one).
public final class Janitor: Sendable {
    public struct Report: Sendable, Equatable {
        /// `creating` environments found complete and marked `ready`.
        public var completed = 0
        /// `creating` environments found incomplete, `deleting` ones, and `failed` ones past the grace, removed.
        public var removed = 0
        /// Users of environments whose vhost no longer exists, or of an earlier incarnation, removed.
        public var orphanUsers = 0
        /// Users whose scheduled revocation came due, removed.
        public var revoked = 0
        /// Full users given the permissions that keep Warren's own names out of their reach.
        public var regranted = 0
        /// Records that fail validation, left alone (and logged at error level).
        public var invalid = 0
        /// Names put into, or taken out of, teams' indexes (`TeamIndex`).
        public var indexed = 0

        public var isEmpty: Bool { self == Report() }
    }

    let provisioner: Provisioner
    /// How long a create may take before its `creating` record counts as abandoned.
    let grace: Duration
    /// When this janitor first saw each "{vhost} {incarnation} {state}" unfinished
    /// (`creating`, `deleting` or `failed`).
    private let firstSeen = PThreadMutex<[String: ContinuousClock.Instant]>([:])

    public init(provisioner: Provisioner, grace: Duration) {
        self.provisioner = provisioner
        self.grace = grace
    }

    public func sweep() async throws -> Report {
        let admin = provisioner.admin
        var report = Report()
        // Users before vhosts: a user is made only once its vhost exists, so any user in this
        // list has a vhost in the later one unless that vhost was really deleted. The other
        // order could take a create's brand-new user for an orphan.
        let users = try await provisioner.step("list users") { try await admin.users() }
        let vhosts = try await provisioner.step("list vhosts") { try await admin.vhosts() }
        var records: [String: EnvironmentRecord] = [:]
        var existing = Set<String>()
        for info in vhosts where EnvironmentNaming.parse(vhost: info.name) != nil {
            existing.insert(info.name)
            switch EnvironmentRecordStore.reading(info) {
            case .valid(let record): records[info.name] = record
            case .invalid(let reason):
                report.invalid += 1
                provisioner.logger.error("environment record fails validation; left alone", metadata: ["vhost": "\(info.name)", "reason": "\(reason)"])
            case .absent, .foreign: break
            }
        }
        ProvisioningMetrics.environments(existing.count)

        for user in users {
            guard let vhost = EnvironmentNaming.vhost(ofUser: user.name) else { continue }
            if existing.contains(vhost) {
                // A user issued for an earlier incarnation of the name: only once the record in
                // force is settled (`ready`), since a create racing another of the same spec can
                // show the loser's incarnation for a moment.
                guard let record = records[vhost], record.state == .ready, !record.incarnation.isEmpty,
                      let incarnation = EnvironmentNaming.incarnation(ofUser: user.name), incarnation != record.incarnation
                else { continue }
            }
            if try await provisioner.step("delete user", { try await admin.deleteUser(user.name) }) {
                report.orphanUsers += 1
            }
        }
        report.regranted = try await regrantFullUsers(records)
        var unfinished: [String: ContinuousClock.Instant] = [:]
        report.indexed = try await repairIndexes(existing: existing, unfinished: &unfinished)

        for (vhost, record) in records where !record.revocations.isEmpty && record.state == .ready {
            report.revoked += try await provisioner.revokeDue(record, vhost: vhost)
        }

        let now = ContinuousClock.now
        for (vhost, record) in records.sorted(by: { $0.key < $1.key }) where record.state != .ready {
            // Only what has stayed unfinished for the grace, as this janitor has seen it: a
            // create or a DELETE running right now on another instance is left to finish.
            let key = "\(vhost) \(record.incarnation) \(record.state.rawValue)"
            let seen = firstSeen.withLock { $0[key] } ?? now
            unfinished[key] = seen
            guard now - seen > grace else { continue }
            // One environment the broker fails on (a slow DELETE vhost) holds up no other.
            do {
                switch try await finishUnfinished(vhost, record: record) {
                case .completed: report.completed += 1
                case .removed: report.removed += 1
                case .untouched: break
                }
            } catch {
                provisioner.logger.warning("janitor could not finish an environment; next sweep tries again", metadata: [
                    "vhost": "\(vhost)", "state": "\(record.state.rawValue)", "error": "\(error)",
                ])
            }
        }
        // Forget what is finished, so the map holds only what the broker holds.
        firstSeen.withLock { $0 = unfinished }

        if !report.isEmpty {
            provisioner.logger.notice("janitor finished interrupted work", metadata: [
                "completed": "\(report.completed)", "removed": "\(report.removed)", "orphan_users": "\(report.orphanUsers)",
                "revoked": "\(report.revoked)", "regranted": "\(report.regranted)", "invalid": "\(report.invalid)",
                "indexed": "\(report.indexed)",
            ])
        }
        return report
    }

    private enum Outcome { case completed, removed, untouched }

    /// A DELETE that has stayed `deleting` past the grace (its Warren died, or gave up) is
    /// finished; another Warren finishing the same one at the same moment is harmless. An
    /// asynchronous create's `failed` record has been there for its owner to read for the
    /// grace: it is removed like a delete. A create
    /// that has stayed `creating` past the grace is marked `ready` when every part exists (its
    /// queue policies applied again first) and removed otherwise; the record's owner refuses
    /// either change when the record has moved on meanwhile (another incarnation, a DELETE
    /// begun, a create that finished).
    private func finishUnfinished(_ vhost: String, record: EnvironmentRecord) async throws -> Outcome {
        guard let owner = EnvironmentNaming.parse(vhost: vhost) else { return .untouched }
        do {
            if record.state == .deleting {
                try await provisioner.finishDelete(vhost, incarnation: record.incarnation)
                return .removed
            }
            if record.state == .failed {
                let after = try await provisioner.records.change(vhost, incarnation: record.incarnation, step: "mark deleting") {
                    if $0.state == .failed { $0.state = .deleting }
                }
                guard after.state == .deleting else { return .untouched }
                try await provisioner.finishDelete(vhost, incarnation: record.incarnation)
                return .removed
            }
            let health = try await provisioner.inspect(team: owner.team, name: owner.name)
            let complete = health?.isComplete ?? false
            // Inspection does not see policies, and they come last in a create: a crash just
            // before them would leave a queue without its settings.
            if complete, let health { try await provisioner.applyPolicies(health.environment) }
            let after = try await provisioner.records.change(vhost, incarnation: record.incarnation, step: complete ? "mark ready" : "mark deleting") {
                guard $0.state == .creating else { return }
                $0.state = complete ? .ready : .deleting
            }
            guard after.state == .deleting else { return complete ? .completed : .untouched }
            try await provisioner.finishDelete(vhost, incarnation: record.incarnation)
            return .removed
        } catch let error as ProvisioningError where error.code == .conflict || error.code == .notFound {
            return .untouched
        }
    }

    /// Teams' indexes brought in line with the vhosts listed: a vhost its index misses is put
    /// in at once (it exists: it counts); a name without a vhost comes out once this janitor has
    /// seen it so for the grace (a create holds its name from just before it makes the vhost,
    /// and no create lasts the grace). Names seen without a vhost go into `unfinished`, keyed
    /// "index {team} {name}", so that their first sighting is remembered.
    private func repairIndexes(existing: Set<String>, unfinished: inout [String: ContinuousClock.Instant]) async throws -> Int {
        let admin = provisioner.admin
        let index = TeamIndex(provisioner: provisioner)
        let stored = try await provisioner.step("list team indexes") { try await admin.globalParameters(prefix: TeamIndex.parameterPrefix) }
        var present: [String: Set<String>] = [:]
        for vhost in existing {
            guard let owner = EnvironmentNaming.parse(vhost: vhost) else { continue }
            present[owner.team, default: []].insert(owner.name)
        }
        var listed: [String: Set<String>] = [:]
        for (parameter, value) in stored {
            let team = String(parameter.dropFirst(TeamIndex.parameterPrefix.count))
            guard NameRules.checkTeamName(team) == nil else { continue }
            listed[team] = Set(TeamIndex.names(in: value) ?? [])
        }
        let now = ContinuousClock.now
        var changed = 0
        for team in Set(present.keys).union(listed.keys).sorted() {
            // A team without an index is left to the first create, which builds it.
            guard let names = listed[team] else { continue }
            let have = present[team] ?? []
            let missing = have.subtracting(names)
            var stale = Set<String>()
            for name in names.subtracting(have) {
                let key = "index \(team) \(name)"
                let seen = firstSeen.withLock { $0[key] } ?? now
                unfinished[key] = seen
                if now - seen > grace { stale.insert(name) }
            }
            guard !missing.isEmpty || !stale.isEmpty else { continue }
            do {
                changed += try await index.repair(team: team, adding: missing, removing: stale)
                for name in stale { unfinished["index \(team) \(name)"] = nil }
            } catch {
                provisioner.logger.warning("janitor could not repair a team index; next sweep tries again", metadata: [
                    "team": "\(team)", "error": "\(error)",
                ])
            }
        }
        return changed
    }

    /// Full users whose permissions still reach Warren's own names (made before they were kept
    /// out of reach: configure, write and read `.*`) get today's full permissions. One
    /// listing of every permission, whatever the number of environments.
    private func regrantFullUsers(_ records: [String: EnvironmentRecord]) async throws -> Int {
        let admin = provisioner.admin
        let permissions = try await provisioner.step("list permissions") { try await admin.permissions() }
        var count = 0
        for permission in permissions where permission.configure == ".*" || permission.write == ".*" || permission.read == ".*" {
            guard let record = records[permission.vhost], record.state == .ready,
                  EnvironmentNaming.isUser(permission.user, of: permission.vhost)
            else { continue }
            try await provisioner.grant(.full, to: permission.user, in: Environment(record: record, vhost: permission.vhost))
            count += 1
        }
        return count
    }

    /// Sweeps now and then every `interval` until the task is cancelled; errors are logged
    /// and the next round tries again.
    public func run(every interval: Duration) async {
        while !Task.isCancelled {
            do {
                _ = try await sweep()
            } catch {
                provisioner.logger.warning("janitor sweep failed", metadata: ["error": "\(error)"])
            }
            // What the sweep's listings took is free now; without this, malloc keeps it.
            FreedMemory.release()
            try? await Task.sleep(for: interval)
        }
    }
}
