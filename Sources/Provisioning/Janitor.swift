import BrokerState
import EnvironmentModel
import FoundationEssentials
import Locking
import Logging
internal import RabbitManagement

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
        /// Environments brought under today's ceilings (made before them, or before a change).
        public var ceilinged = 0
        /// Unfinished environments past the grace that the janitor would have removed (a
        /// `creating` one missing a part, a `failed` one) but left because they are protected:
        /// the janitor never deletes a protected environment. Each is logged once.
        public var protectedLeft = 0
        /// Protected environments whose vhost had lost the broker's protection (lifted behind
        /// Warren's back, or by a definitions import, which drops the flag), protected again.
        public var reprotected = 0
        /// The phases that failed this sweep (each logged at warning level); the others ran.
        public var failedPhases: Set<String> = []

        public var isEmpty: Bool { self == Report() }
    }

    let provisioner: Provisioner
    /// How long a create may take before its `creating` record counts as abandoned.
    let grace: Duration
    /// When this janitor first saw each "{vhost} {incarnation} {state}" unfinished
    /// (`creating`, `deleting` or `failed`).
    private let firstSeen = PThreadMutex<[String: ContinuousClock.Instant]>([:])
    /// The "{vhost} {incarnation} {state}" of protected environments left unfinished, already
    /// logged: each is said once, not every sweep.
    private let protectedLogged = PThreadMutex<Set<String>>([])
    /// When the regrant phase may run again: its listing of every permission on the broker
    /// grows with the broker rather than with the work to do (see `ListingPacing`). It stays a
    /// phase of every sweep on a broker that answers it quickly, since a Warren of an earlier
    /// release still running beside this one (a rolling upgrade) may make such users.
    private let regrantPacing = PThreadMutex(ListingPacing())

    /// When the orphan phase may run again (see `ListingPacing`).
    private let orphanPacing = PThreadMutex(ListingPacing())
    /// When this janitor first saw each user of a ready environment's own incarnation without
    /// permissions: a rotation (or a repeated create) that died between making the user and
    /// granting it. Such a user is removed once it has stayed so for the grace, which is longer
    /// than any rotation takes between those two calls.
    private let halfMadeSeen = PThreadMutex<[String: ContinuousClock.Instant]>([:])

    /// Bounds on broker calls in flight within one phase (see `BoundedConcurrency.swift`).
    static let environmentsInFlight = 4

    /// A grace that does not outlast the provisioner's longest create (see `problem(withGrace:for:)`).
    public struct GraceTooShort: Error, CustomStringConvertible {
        public let description: String
    }

    /// Why `grace` is too short for this provisioner's creates, or nil. The janitor takes a
    /// `creating` record older than the grace for an abandoned create: a grace that does not
    /// outlast the longest create would tear down one still running.
    public static func problem(withGrace grace: Duration, for provisioner: Provisioner) -> String? {
        let longest = provisioner.longestCreate
        guard grace <= longest else { return nil }
        let milliseconds = longest.components.seconds * 1000 + longest.components.attoseconds / 1_000_000_000_000_000
        return "must be longer than the longest create, \(milliseconds) ms (the create deadline plus one management timeout per management URL)"
    }

    /// Refuses a grace that does not outlast the longest create: the rule is the janitor's,
    /// whoever configures it.
    public convenience init(provisioner: Provisioner, grace: Duration) throws(GraceTooShort) {
        if let problem = Self.problem(withGrace: grace, for: provisioner) { throw GraceTooShort(description: problem) }
        self.init(provisioner: provisioner, uncheckedGrace: grace)
    }

    /// For tests that sweep with a grace of milliseconds beside creates with the default deadline.
    init(provisioner: Provisioner, uncheckedGrace grace: Duration) {
        self.provisioner = provisioner
        self.grace = grace
    }

    /// One sweep, in phases that each stand alone: a phase that fails (a listing that times out
    /// on a large broker) is logged at warning level and named in the report, and the phases
    /// after it run all the same. No phase waits on a listing of every user or every permission:
    /// what Warren asks for grows with the environments it acts on (and the vhost listing), not
    /// with the users on the broker, and the revocations come before the one listing the broker
    /// may be slow to build (users without permissions, see `ListingPacing`), so scheduled
    /// revocations come due within about one interval however many users other teams have.
    public func sweep() async throws -> Report {
        var report = Report()
        // The vhosts first (the records are in their descriptions), and the revocations right
        // after: they are the work with a time promised to someone.
        let listing = await phase("list vhosts", &report) { try await self.listEnvironments() }
        report.invalid = listing?.invalid ?? 0
        let records = listing?.records ?? [:]
        if !records.isEmpty {
            report.revoked = await revoke(records, &report)
        }
        if let listing {
            var unfinished: [String: ContinuousClock.Instant] = [:]
            report.indexed = await phase("repair indexes", &report) {
                try await self.repairIndexes(existing: listing.existing, unfinished: &unfinished)
            } ?? 0
            await finishUnfinished(records, unfinished: &unfinished, &report)
            // Forget what is finished, so the map holds only what the broker holds.
            firstSeen.withLock { $0 = unfinished }
            // Three listings whatever the broker holds, then work only where the ceilings on
            // the broker are not today's.
            report.ceilinged = await phase("ceilings", &report) { try await self.provisioner.reconcileCeilings(records) } ?? 0
            if !listing.brokerUnprotected.isEmpty {
                report.reprotected = await phase("restore protection", &report) {
                    try await self.restoreProtection(listing.brokerUnprotected, records)
                } ?? 0
            }
        }
        // After the deletes just finished: a user whose permissions never arrived (a crash
        // between the two calls that make it) is found by no delete, only here, once its vhost
        // is gone.
        if orphanPacing.withLock({ $0.due(at: .now) }) {
            let start = ContinuousClock.now
            let removed = await phase("orphan users", &report) { try await self.removeOrphanUsers() }
            orphanPacing.withLock { $0.ran(took: .now - start, failed: removed == nil) }
            report.orphanUsers = removed ?? 0
        }
        // Last, so that even while it fails (its listing times out on a broker with many
        // users) it holds up nothing of this sweep; paced like the orphans' listing.
        if listing != nil, regrantPacing.withLock({ $0.due(at: .now) }) {
            let start = ContinuousClock.now
            let count = await phase("regrant full users", &report) { try await self.regrantFullUsers(records) }
            regrantPacing.withLock { $0.ran(took: .now - start, failed: count == nil) }
            report.regranted = count ?? 0
        }

        var work = report
        work.failedPhases = []
        // Said once per environment where it is found (see `finishUnfinished`), not every sweep.
        work.protectedLeft = 0
        if !work.isEmpty {
            provisioner.logger.notice("janitor finished interrupted work", metadata: [
                "completed": "\(report.completed)", "removed": "\(report.removed)", "orphan_users": "\(report.orphanUsers)",
                "revoked": "\(report.revoked)", "regranted": "\(report.regranted)", "invalid": "\(report.invalid)",
                "indexed": "\(report.indexed)", "ceilinged": "\(report.ceilinged)", "reprotected": "\(report.reprotected)",
            ])
        }
        return report
    }

    /// Runs one phase of a sweep: nil, logged and noted in the report, when it fails.
    private func phase<T: Sendable>(_ name: String, _ report: inout Report, _ body: () async throws -> T) async -> T? {
        do {
            return try await body()
        } catch {
            report.failedPhases.insert(name)
            provisioner.logger.warning("janitor phase failed; the other phases ran, the next sweep tries it again", metadata: [
                "phase": "\(name)", "error": "\(error)",
            ])
            return nil
        }
    }

    private struct Listing: Sendable {
        /// Valid records, by vhost.
        var records: [String: EnvironmentRecord] = [:]
        /// Every vhost named like an environment's.
        var existing = Set<String>()
        /// Records that fail validation (logged at error level), left alone.
        var invalid = 0
        /// Ready protected environments whose vhost the broker says is not protected (only a
        /// release that protects vhosts says so: before 4.1 the listing has no such field).
        var brokerUnprotected: [String] = []
    }

    private func listEnvironments() async throws -> Listing {
        let admin = provisioner.admin
        let vhosts = try await provisioner.step("list vhosts") { try await admin.vhosts() }
        var listing = Listing()
        for info in vhosts where EnvironmentNaming.parse(vhost: info.name) != nil {
            listing.existing.insert(info.name)
            switch EnvironmentRecordStore.reading(info) {
            case .valid(let record):
                listing.records[info.name] = record
                if record.spec.protected, record.state == .ready, info.protectedFromDeletion == false {
                    listing.brokerUnprotected.append(info.name)
                }
            case .invalid(let reason):
                listing.invalid += 1
                provisioner.logger.error("environment record fails validation; left alone", metadata: ["vhost": "\(info.name)", "reason": "\(reason)"])
            case .absent, .foreign: break
            }
        }
        ProvisioningMetrics.environments(listing.existing.count)
        return listing
    }

    /// Scheduled revocations that came due, a few environments at a time; one environment the
    /// broker fails on holds up no other.
    private func revoke(_ records: [String: EnvironmentRecord], _ report: inout Report) async -> Int {
        let provisioner = provisioner
        let due = records.filter { !$0.value.revocations.isEmpty && $0.value.state == .ready }.sorted { $0.key < $1.key }
        let revoked = PThreadMutex(0)
        let failed = PThreadMutex(false)
        try? await eachConcurrently(due, limit: Self.environmentsInFlight) { vhost, record in
            do {
                let count = try await provisioner.revokeDue(record, vhost: vhost)
                revoked.withLock { $0 += count }
            } catch {
                failed.withLock { $0 = true }
                provisioner.logger.warning("janitor could not carry out a revocation; next sweep tries again", metadata: [
                    "vhost": "\(vhost)", "error": "\(error)",
                ])
            }
        }
        if failed.withLock({ $0 }) { report.failedPhases.insert("revoke") }
        return revoked.withLock { $0 }
    }

    /// Users without permissions on any vhost whose vhost is gone, who belong to an earlier
    /// incarnation of a settled environment, or who have stayed without permissions in their
    /// own settled environment for the grace (a rotation that died half-made), removed. The broker lists only the users without
    /// permissions (`GET /api/users/without-permissions`), never every user. The users are listed
    /// before their vhosts are read: a user is made only once its vhost exists, so a user listed
    /// here has a vhost in the later reads unless that vhost was really deleted. The other order
    /// could take a create's brand-new user (made, its permissions not yet granted) for an
    /// orphan. So the vhosts are read again here, one call per vhost the candidates name, and
    /// not taken from the sweep's earlier listing.
    private func removeOrphanUsers() async throws -> Int {
        let provisioner = provisioner
        let admin = provisioner.admin
        let candidates = try await provisioner.step("list users without permissions") { try await admin.usersWithoutPermissions() }
        var byVhost: [String: [String]] = [:]
        for user in candidates {
            guard let vhost = EnvironmentNaming.vhost(ofUser: user.name) else { continue }
            byVhost[vhost, default: []].append(user.name)
        }
        // Forget the users that have since been granted or removed.
        let now = ContinuousClock.now
        let halfMadeSince = halfMadeSeen.withLock { seen in
            seen = Dictionary(candidates.map { ($0.name, seen[$0.name] ?? now) }, uniquingKeysWith: { first, _ in first })
            return seen
        }
        guard !byVhost.isEmpty else { return 0 }
        let orphans = PThreadMutex<[String]>([])
        try await eachConcurrently(byVhost.sorted { $0.key < $1.key }, limit: Self.environmentsInFlight) { vhost, users in
            let found = try await provisioner.step("read vhost") { try await admin.vhost(vhost) }
            let doomed: [String]
            if let found {
                // A user issued for an earlier incarnation of the name: only once the record in
                // force is settled (`ready`), since a create racing another of the same spec can
                // show the loser's incarnation for a moment.
                guard case .valid(let record) = EnvironmentRecordStore.reading(found), record.state == .ready, !record.incarnation.isEmpty
                else { return }
                doomed = users.filter { user in
                    guard let incarnation = EnvironmentNaming.incarnation(ofUser: user) else { return false }
                    return incarnation != record.incarnation || now - (halfMadeSince[user] ?? now) > self.grace
                }
            } else {
                doomed = users
            }
            orphans.withLock { $0 += doomed }
        }
        let doomed = orphans.withLock { $0 }.sorted()
        try await provisioner.deleteUsers(doomed)
        return doomed.count
    }

    /// Creates and deletes that have stayed unfinished for the grace, one after the other.
    private func finishUnfinished(_ records: [String: EnvironmentRecord], unfinished: inout [String: ContinuousClock.Instant], _ report: inout Report) async {
        let now = ContinuousClock.now
        var protectedLeft = Set<String>()
        defer { protectedLogged.withLock { $0.formIntersection(protectedLeft) } }
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
                case .protectedLeft:
                    report.protectedLeft += 1
                    protectedLeft.insert(key)
                    if protectedLogged.withLock({ $0.insert(key).inserted }) {
                        provisioner.logger.warning("janitor leaves an unfinished environment because it is protected; its owner repeats the create or reconciles it, or lifts the protection and deletes it", metadata: [
                            "vhost": "\(vhost)", "state": "\(record.state.rawValue)",
                        ])
                    }
                }
            } catch {
                report.failedPhases.insert("finish unfinished")
                provisioner.logger.warning("janitor could not finish an environment; next sweep tries again", metadata: [
                    "vhost": "\(vhost)", "state": "\(record.state.rawValue)", "error": "\(error)",
                ])
            }
        }
    }

    /// The orphan and regrant phases' listings cost the broker more than the rest of a sweep
    /// (and grow with it, not with the work to do). RabbitMQ 3.10
    /// builds `GET /api/users/without-permissions` by reading each user's permissions, which
    /// took 0.3 s with 1,000 users and 12 s (past the default timeout) with 10,000, and the
    /// broker goes on with it after the client gave up. So a phase that took a second or more
    /// waits nine times as long as it took before it runs again (at most a tenth of the
    /// broker's time), twice that for each failure in a row (up to 64 times); a quicker one
    /// runs every sweep. Orphans are no one's deadline; revocations, which are, run before it.
    struct ListingPacing {
        var notBefore: ContinuousClock.Instant?
        var failures = 0

        func due(at now: ContinuousClock.Instant) -> Bool { notBefore.map { now >= $0 } ?? true }

        mutating func ran(took: Duration, failed: Bool) {
            failures = failed ? min(failures + 1, 6) : 0
            notBefore = took < .seconds(1) ? nil : ContinuousClock.now + took * 9 * (1 << failures)
        }
    }

    private enum Outcome { case completed, removed, untouched, protectedLeft }

    /// A DELETE that has stayed `deleting` past the grace (its Warren died, or gave up) is
    /// finished; another Warren finishing the same one at the same moment is harmless. An
    /// asynchronous create's `failed` record has been there for its owner to read for the
    /// grace: it is removed like a delete. A create
    /// that has stayed `creating` past the grace is marked `ready` when every part exists (its
    /// queue policies applied again first) and removed otherwise; the record's owner refuses
    /// either change when the record has moved on meanwhile (another incarnation, a DELETE
    /// begun, a create that finished).
    ///
    /// A protected environment is never removed: a `failed` one, or a `creating` one missing a
    /// part, is left as it is (`protectedLeft`), checked again under the record's lock as the
    /// record would be marked `deleting`. A complete protected one gets the broker's half of
    /// its protection before it is marked `ready`, as its create would have done.
    private func finishUnfinished(_ vhost: String, record: EnvironmentRecord) async throws -> Outcome {
        guard let owner = EnvironmentNaming.parse(vhost: vhost) else { return .untouched }
        do {
            if record.state == .deleting {
                // A record in `deleting` is never protected (see `Provisioner.delete`);
                // `finishDelete` checks that again before anything goes.
                try await provisioner.finishDelete(vhost, incarnation: record.incarnation)
                return .removed
            }
            if record.state == .failed {
                guard !record.spec.protected else { return .protectedLeft }
                let after = try await provisioner.records.change(vhost, incarnation: record.incarnation, step: "mark deleting") {
                    if $0.state == .failed, !$0.spec.protected { $0.state = .deleting }
                }
                guard after.state == .deleting else { return after.spec.protected ? .protectedLeft : .untouched }
                try await provisioner.finishDelete(vhost, incarnation: record.incarnation)
                return .removed
            }
            let health = try await provisioner.inspect(team: owner.team, name: owner.name)
            let complete = health?.isComplete ?? false
            // Inspection does not see policies, and they come last in a create: a crash just
            // before them would leave a queue without its settings.
            if complete, let health { try await provisioner.applyPolicies(health.environment) }
            if complete, record.spec.protected {
                try await provisioner.records.applyBrokerProtection(
                    vhost, incarnation: record.incarnation, brokerEnforces: try await provisioner.brokerProtectsVhosts())
            }
            let after = try await provisioner.records.change(vhost, incarnation: record.incarnation, step: complete ? "mark ready" : "mark deleting") {
                guard $0.state == .creating else { return }
                if complete {
                    $0.state = .ready
                } else if !$0.spec.protected {
                    $0.state = .deleting
                }
            }
            guard after.state == .deleting else {
                if complete { return .completed }
                return after.state == .creating && after.spec.protected ? .protectedLeft : .untouched
            }
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
        let index = provisioner.teamIndex
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

    /// Puts the broker's protection back on protected environments that lost it, under each
    /// record's lock (a protection lifted meanwhile through Warren is not put back), a few at
    /// a time. What the vhost listing shows costs nothing more; each repair is one call.
    private func restoreProtection(_ vhosts: [String], _ records: [String: EnvironmentRecord]) async throws -> Int {
        let provisioner = provisioner
        guard try await provisioner.brokerProtectsVhosts() else { return 0 }
        let restored = PThreadMutex(0)
        try await eachConcurrently(vhosts, limit: Self.environmentsInFlight) { vhost in
            guard let record = records[vhost] else { return }
            if try await provisioner.records.applyBrokerProtection(vhost, incarnation: record.incarnation, brokerEnforces: true) {
                restored.withLock { $0 += 1 }
                provisioner.logger.notice("janitor protected a vhost the broker no longer protected", metadata: ["vhost": "\(vhost)"])
            }
        }
        return restored.withLock { $0 }
    }

    /// Full users whose permissions still reach Warren's own names (made before they were kept
    /// out of reach: configure, write and read `.*`) get today's full permissions. One
    /// listing of every permission on the broker: a migration for environments made before
    /// that change, so the sweep runs it only until it has succeeded once.
    private func regrantFullUsers(_ records: [String: EnvironmentRecord]) async throws -> Int {
        let provisioner = provisioner
        let admin = provisioner.admin
        let permissions = try await provisioner.step("list permissions") { try await admin.permissions() }
        let stale = permissions.filter { permission in
            guard permission.configure == ".*" || permission.write == ".*" || permission.read == ".*",
                  let record = records[permission.vhost], record.state == .ready
            else { return false }
            return EnvironmentNaming.isUser(permission.user, of: permission.vhost)
        }
        try await eachConcurrently(stale, limit: Self.environmentsInFlight) { permission in
            guard let record = records[permission.vhost] else { return }
            try await provisioner.grant(.full, to: permission.user, in: Environment(record: record, vhost: permission.vhost))
        }
        return stale.count
    }

    /// Sweeps now and then every `interval` until the task is cancelled; errors are logged
    /// and the next round tries again. `afterSweep` runs after each one: the executable gives
    /// the memory the sweep's listings took back to the system there (a process concern, not
    /// the janitor's).
    public func run(every interval: Duration, afterSweep: @Sendable () -> Void = {}) async {
        while !Task.isCancelled {
            do {
                _ = try await sweep()
            } catch {
                provisioner.logger.warning("janitor sweep failed", metadata: ["error": "\(error)"])
            }
            afterSweep()
            try? await Task.sleep(for: interval)
        }
    }
}
