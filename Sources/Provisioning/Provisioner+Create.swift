import BrokerState
import EnvironmentModel
import Logging
internal import RabbitManagement

/// Creating an environment: the claim that settles racing creates, the quota that holds under
/// them, joining a create of the same spec already under way, and the rollback of a failed one.
extension Provisioner {
    /// Creates the environment, or re-ensures it and issues fresh credentials when it exists with
    /// the same spec: one set for each of `roles`. On any failure it removes what this call made
    /// and throws; it never leaves a vhost it created without its topology, and never removes
    /// one that another create has answered for.
    ///
    /// With `finishInBackground` (an asynchronous create), a call that makes the vhost returns
    /// as soon as the vhost and its `creating` record exist (the quota and the name are held by
    /// then), with `pending` set and the credentials its users will have; the rest goes on in
    /// the background, and a failure there leaves the record `failed` with the reason instead
    /// of an error (see `finishInBackground(_:record:issued:)`). A call that finds the
    /// environment already there works as without it.
    ///
    /// `platform` is the Open Service Broker instance the environment is: it goes into the
    /// record, and a create that names one never joins an environment that is another.
    /// `tier` is the blueprint whose ceilings a new environment gets (see `tier(ofBlueprint:)`).
    public func create(
        team: String, spec: EnvironmentSpec, roles: [Role] = [.full], platform: PlatformInstance? = nil,
        tier: String? = nil, finishInBackground: Bool = false
    ) async throws -> CreateResult {
        try await measured("create") {
            try await BrokerSession.$deadline.withValue(.now + createDeadline) {
                let spec = try await explicit(spec)
                // A create whose environment another create's rollback (or a DELETE) removed
                // under it starts over (at most twice): the caller asked for an environment, and
                // one racing create's failure is no reason to refuse it.
                var rejoins = 0
                while true {
                    do {
                        return try await makeOrEnsure(
                            team: team, spec: spec, roles: roles, platform: platform, tier: tier, inBackground: finishInBackground)
                    } catch let vanished as JoinedEnvironmentVanished {
                        guard rejoins < 2 else { throw vanished.underlying }
                        rejoins += 1
                        logger.notice("the environment this create joined went away; starting over", metadata: [
                            "vhost": "\(EnvironmentNaming.vhost(team: team, name: spec.name))", "error": "\(vanished.underlying)",
                        ])
                        try await waitWhileDeleting(EnvironmentNaming.vhost(team: team, name: spec.name))
                    }
                }
            }
        }
    }

    /// The environment a create worked on went away under it, removed by someone else.
    fileprivate struct JoinedEnvironmentVanished: Error {
        var underlying: any Error
    }

    /// Whether the environment of `incarnation` that a create joined is gone or going.
    private func vanished(_ vhost: String, incarnation: String) async -> Bool {
        switch try? await records.read(vhost) {
        case .absent: return true
        case .valid(let record): return record.incarnation != incarnation || record.state == .deleting
        default: return false
        }
    }

    /// Waits (a few seconds at most) for a delete under way to finish.
    private func waitWhileDeleting(_ vhost: String) async throws {
        for _ in 0..<30 {
            guard case .valid(let record) = try await records.read(vhost), record.state == .deleting else { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func makeOrEnsure(
        team: String, spec: EnvironmentSpec, roles: [Role], platform: PlatformInstance?, tier: String?, inBackground: Bool
    ) async throws -> CreateResult {
        let vhost = EnvironmentNaming.vhost(team: team, name: spec.name)
        var record: EnvironmentRecord
        // Whether this create made the vhost for its own incarnation, and so may remove it.
        var ownsVhost = false
        // The incarnation this create joined, when another create made the vhost.
        var joined: String?
        var found = try await records.read(vhost)
        var fresh = EnvironmentRecord(team: team, spec: spec, createdAt: EnvironmentRecord.now())
        fresh.platform = platform
        fresh.tier = tier
        if case .absent = found {
            // Nil: made (the team's quota held first, see `TeamIndex`). Otherwise another
            // create (or anyone) came first, and that is what is found.
            found = try await records.create(fresh, vhost: vhost, teamLimit: maxEnvironmentsPerTeam) ?? .absent
        }
        switch found {
        case .valid(let existing):
            record = try matching(existing, spec: spec, platform: platform)
            joined = record.incarnation
        case .foreign:
            throw ProvisioningError(code: .conflict, detail: "vhost \(vhost) exists and is not managed by Warren")
        case .invalid(let reason):
            logger.error("environment record fails validation", metadata: ["vhost": "\(vhost)", "reason": "\(reason)"])
            throw ProvisioningError.invalidRecord(spec.name, reason)
        case .absent:
            record = fresh
            ownsVhost = true
        }

        if inBackground, ownsVhost {
            let issued = newCredentials(roles, vhost: vhost, incarnation: record.incarnation)
            let (created, deadline) = (record, BrokerSession.deadline)
            background.start { [self] in
                await BrokerSession.$deadline.withValue(deadline) { await finishInBackground(vhost, record: created, issued: issued) }
            }
            logger.info("environment accepted; making it in the background", metadata: ["vhost": "\(vhost)"])
            return CreateResult(environment: Environment(record: record, vhost: vhost), credentials: issued, created: true, pending: true)
        }

        var issued: [IssuedCredentials] = []
        do {
            record = try await prepare(vhost, record: record, ownsVhost: &ownsVhost)
            if !ownsVhost { joined = record.incarnation }
            let environment = Environment(record: record, vhost: vhost)
            issued = newCredentials(roles, vhost: vhost, incarnation: record.incarnation)
            if ownsVhost || issued.isEmpty {
                try await makeParts(of: environment, record: record, users: issued, fresh: ownsVhost)
            } else {
                // A create of an environment that exists issues fresh credentials: they count
                // against its users and the team's credentials per minute like a rotation.
                try takeRotation(team: team)
                try await withRoomForUsers(issued.count, in: environment) { _ in
                    try await makeParts(of: environment, record: record, users: issued)
                }
            }
            logger.info("environment ready", metadata: [
                "vhost": "\(vhost)", "users": "\(issued.map(\.username).joined(separator: ","))", "created": "\(ownsVhost)",
            ])
            return CreateResult(environment: environment, credentials: issued, created: ownsVhost)
        } catch {
            let removed = await rollBack(
                vhost: vhost, incarnation: ownsVhost ? record.incarnation : nil, users: issued.map(\.username),
                askedProtection: record.spec.protected)
            // Not this create's own rollback, but another's (or a DELETE) took the environment
            // away under it: start over rather than fail.
            if !removed, let attempted = joined ?? (ownsVhost ? record.incarnation : nil), await vanished(vhost, incarnation: attempted) {
                throw JoinedEnvironmentVanished(underlying: error)
            }
            throw error
        }
    }

    /// One new set of credentials for each role (the users are not made yet).
    private func newCredentials(_ roles: [Role], vhost: String, incarnation: String) -> [IssuedCredentials] {
        roles.map { role in
            IssuedCredentials(
                username: EnvironmentNaming.newUserName(vhost: vhost, incarnation: incarnation), password: PasswordGenerator.make(), role: role)
        }
    }

    /// What a create makes once the vhost runs and the claim is held: the users and the
    /// topology (at once: they do not depend on each other), then the record marked `ready`.
    ///
    /// A protected environment's record says so from its first write (the vhost's PUT carries
    /// it: the record half first), and the broker's half is put in place once every part
    /// exists, before the record says `ready`; a create of one that exists puts it back if it
    /// went. Until `ready` a failure rolls back as for any create: the caller, told of the
    /// failure, was never told of a protected environment (see `rollBack`).
    ///
    /// `fresh`: this create made the vhost, which holds no queue yet but the claim. Its ceilings
    /// then go first, all at once (see `applyCeilings`), and every queue is born under them,
    /// instead of last, one step after another. Not beside the declarations: a policy put in
    /// place while a queue is being declared can miss that queue for good (RabbitMQ 3.10 made a
    /// classic queue so that took 100 messages past its 20-message ceiling).
    private func makeParts(of environment: Environment, record: EnvironmentRecord, users: [IssuedCredentials], fresh: Bool = false) async throws {
        if fresh { try await applyCeilings(environment, fresh: true) }
        // An agent's topic permission names the exchange, which RabbitMQ 4 requires to exist
        // (3.10 does not): agents' users come after the topology, everyone else's beside it.
        let spec = environment.spec
        let agents = users.filter { $0.role.permissions(for: spec).topic != nil }
        let others = users.filter { $0.role.permissions(for: spec).topic == nil }
        try await concurrently(
            others.map { credentials in { @Sendable in try await makeUser(credentials, for: environment) } }
                + [{ @Sendable in
                    try await declareTopology(environment, ceilingsInPlace: fresh)
                    try await concurrently(agents.map { credentials in { @Sendable in try await makeUser(credentials, for: environment) } })
                }])
        if record.spec.protected {
            try await records.applyBrokerProtection(
                environment.vhost, incarnation: record.incarnation, brokerEnforces: try await brokerProtectsVhosts())
        }
        if record.state != .ready {
            // A DELETE that began meanwhile keeps its `deleting`: the store refuses to undo it.
            // A create that joins one whose background work failed has made every part itself.
            try await records.change(environment.vhost, incarnation: record.incarnation, step: "mark ready") {
                $0.state = .ready
                $0.failureReason = nil
            }
        }
    }

    /// The rest of an asynchronous create, after its answer has left. A failure removes the
    /// users it made and leaves the record `failed` with the reason, for the caller polling the
    /// environment to read; the vhost stays until a DELETE or, after the grace, the janitor
    /// removes it. Should Warren stop meanwhile, the record stays `creating` and the janitor
    /// finishes it as any interrupted create: `ready` when every part exists, removed otherwise.
    private func finishInBackground(_ vhost: String, record: EnvironmentRecord, issued: [IssuedCredentials]) async {
        var ownsVhost = true
        do {
            let held = try await prepare(vhost, record: record, ownsVhost: &ownsVhost)
            guard held.incarnation == record.incarnation else {
                throw ProvisioningError(code: .conflict, detail: "another create of environment \(record.spec.name) holds its name", step: "claim name")
            }
            try await makeParts(of: Environment(record: held, vhost: vhost), record: held, users: issued, fresh: ownsVhost)
            logger.info("environment ready", metadata: [
                "vhost": "\(vhost)", "users": "\(issued.map(\.username).joined(separator: ","))", "created": "true", "background": "true",
            ])
        } catch {
            let reason = String(((error as? ProvisioningError)?.detail ?? "\(error)").prefix(500))
            logger.error("asynchronous create failed", metadata: ["vhost": "\(vhost)", "error": "\(error)"])
            await rollBack(vhost: vhost, incarnation: nil, users: issued.map(\.username))
            do {
                try await BrokerSession.$deadline.withValue(nil) {
                    try await records.change(vhost, incarnation: record.incarnation, step: "mark failed") {
                        guard $0.state == .creating else { return }
                        $0.state = .failed
                        $0.failureReason = reason
                    }
                }
            } catch {
                // Gone, deleting, or another's now: nothing of this create is left to report on.
                logger.warning("asynchronous create could not record its failure", metadata: ["vhost": "\(vhost)", "error": "\(error)"])
            }
        }
    }

    /// What every create and repair does first: wait until the vhost runs, give Warren's own
    /// user permissions in it, and hold the claim on the name. Returns the record of the
    /// incarnation that holds the claim: a create that finds another create of the same spec
    /// ahead of it joins that one (and clears `ownsVhost`). A lost claim clears `ownsVhost`
    /// and throws a conflict: the vhost belongs to the create that won.
    ///
    /// The management API gives the user that makes a vhost every permission in it (3.10, 4.0
    /// and 4.3 alike), so a vhost this create made (`ownsVhost`) needs no grant; any other vhost
    /// gets one, and so does this one should the claim find Warren without them (401).
    func prepare(_ vhost: String, record: EnvironmentRecord, ownsVhost: inout Bool) async throws -> EnvironmentRecord {
        try await waitUntilRunning(vhost)
        if !ownsVhost { try await session.grantServiceUser(in: vhost) }
        let claimed: ClaimOutcome
        do {
            claimed = try await records.claim(vhost, for: record)
        } catch let error as ProvisioningError where ownsVhost && error.underlying?.code == .unauthorized {
            try await session.grantServiceUser(in: vhost)
            claimed = try await records.claim(vhost, for: record)
        }
        let holder: EnvironmentRecord
        switch claimed {
        case .lost(let winner):
            let madeVhost = ownsVhost
            ownsVhost = false
            throw await lostClaim(vhost, record: record, winner: winner, madeVhost: madeVhost)
        case .held(let found):
            holder = found
        }
        guard holder.incarnation != record.incarnation else { return record }
        if ownsVhost {
            // Another create of the same spec made the vhost first, and this one's PUT wrote
            // its own record over the winner's: put the winner's back, unless it moved on.
            ownsVhost = false
            _ = try? await records.change(vhost, incarnation: record.incarnation, step: "restore record") { $0 = holder }
        }
        return holder
    }

    /// Another create of this name with another spec declared the claim first (`winner`, when
    /// its record could be read). When this create's PUT wrote its record over the winner's,
    /// the winner's is put back; the answer names the fields that differ.
    private func lostClaim(_ vhost: String, record: EnvironmentRecord, winner: EnvironmentRecord?, madeVhost: Bool) async -> ProvisioningError {
        var fields = ["spec"]
        if let winner {
            fields = record.spec.differences(from: winner.spec)
            if madeVhost {
                _ = try? await records.change(vhost, incarnation: record.incarnation, step: "restore record") { $0 = winner }
            }
        }
        return ProvisioningError(
            code: .conflict,
            detail: "environment \(record.spec.name) is being created with a different spec: \(fields.joined(separator: ", ")) differ",
            fields: fields)
    }

    /// The existing environment's record when it matches the requested spec (and platform
    /// instance, when one is named); a conflict otherwise.
    private func matching(_ record: EnvironmentRecord, spec: EnvironmentSpec, platform: PlatformInstance?) throws -> EnvironmentRecord {
        guard record.state != .deleting else {
            throw ProvisioningError.beingDeleted(spec.name)
        }
        guard record.state != .failed else { throw ProvisioningError.failed(spec.name, record.failureReason) }
        if let platform, record.platform?.instanceID != platform.instanceID || record.platform?.platform != platform.platform {
            throw ProvisioningError(
                code: .conflict, detail: "environment \(spec.name) exists and is not this platform's instance", fields: ["platform"])
        }
        var asked = spec
        // A platform never asks for protection (/v2 does not take it): a protection the team
        // set through /v1 is no difference to a repeated provision.
        if platform != nil { asked.protected = record.spec.protected }
        let differences = asked.differences(from: record.spec)
        guard differences.isEmpty else {
            throw ProvisioningError(
                code: .conflict,
                detail: "environment \(spec.name) exists with a different spec: \(differences.joined(separator: ", ")) differ",
                fields: differences)
        }
        return record
    }

    /// Removes what a failed create made: its users, and the vhost when this create's
    /// incarnation made it, holds its claim (or nobody does yet), and the record still says
    /// `creating` (a create of the same spec that joined it and finished has marked it `ready`
    /// and answered for it: it stays). True when it removed the vhost. Best effort: a failure
    /// here is logged, and the janitor or a later DELETE removes what remains.
    ///
    /// A create that asked for protection (`askedProtection`) and failed has promised no one a
    /// protected environment (its caller gets the failure, no other create answered for it),
    /// so its rollback lifts the protection with the same record write that marks it
    /// `deleting`, and the delete then lifts the broker's half. A protection the create did not
    /// ask for was a PATCH's, made while it ran: that environment stays, for its owner.
    @discardableResult
    func rollBack(vhost: String, incarnation: String?, users: [String], askedProtection: Bool = false) async -> Bool {
        await BrokerSession.$deadline.withValue(nil) {
            for user in users {
                do { _ = try await admin.deleteUser(user) } catch {
                    logger.error("rollback could not delete user", metadata: ["user": "\(user)", "error": "\(error)"])
                }
            }
            guard let incarnation else { return false }
            // The failure being rolled back may still be going on (a node restarting, a
            // connection reset): a few tries, spaced out, before the janitor is left to it.
            for pause in [Duration.milliseconds(400), .milliseconds(800), .zero] {
                do {
                    // Two creates that both found no vhost both wrote a record; the claim says
                    // whose the environment is. The other's stays.
                    if let holder = try await records.claimHolder(vhost), holder.incarnation != incarnation { return false }
                    let record = try await records.change(vhost, incarnation: incarnation, step: "mark deleting") {
                        guard $0.state == .creating, askedProtection || !$0.spec.protected else { return }
                        $0.state = .deleting
                        $0.spec.protected = false
                    }
                    guard record.state == .deleting else { return false }
                    try await finishDelete(vhost, incarnation: incarnation)
                    return true
                } catch let error as ProvisioningError where (error.code == .broker || error.code == .busy) && pause > .zero {
                    try? await Task.sleep(for: pause)
                } catch {
                    logger.error("rollback could not delete vhost", metadata: ["vhost": "\(vhost)", "error": "\(error)"])
                    return false
                }
            }
            return false
        }
    }
}
