import EnvironmentModel
package import RabbitManagement

/// What a vhost's description says, as far as Warren may trust it.
package enum RecordReading: Sendable {
    /// No such vhost.
    case absent
    /// A vhost whose description is not a Warren record: not an environment, never touched.
    case foreign
    /// A Warren record that fails validation (the reason): reported, never acted on.
    case invalid(String)
    case valid(EnvironmentRecord)
}

/// The one owner of environment records. Every read of a record that Warren acts on, and every
/// write, goes through here.
///
/// The record lives in the vhost's description, which only an administrator can write (tenant
/// users get no management tags). A write re-reads the record under the record's lock
/// (`RecordLock`) and applies one change to what it finds, so concurrent operations on any
/// number of instances never write back a stale copy over each other. It never turns
/// `deleting` into anything else, never touches another incarnation of the name, and never
/// brings back a vhost that is gone: the read under the lock finds it gone, and a write that
/// nevertheless made the vhost anew (it went in the moment between) deletes the empty shell
/// at once.
package struct EnvironmentRecordStore: Sendable {
    let session: BrokerSession

    package init(session: BrokerSession) { self.session = session }

    private var admin: any BrokerAdmin { session.admin }

    package func read(_ vhost: String) async throws -> RecordReading {
        guard let info = try await session.step("read vhost", { try await admin.vhost(vhost) }) else { return .absent }
        return Self.reading(info)
    }

    /// What a listed or fetched vhost's description says; a record that fails validation is
    /// logged at error level wherever it is met.
    package static func reading(_ info: VhostInfo) -> RecordReading {
        guard let record = EnvironmentRecord.decode(description: info.description) else {
            return info.description.contains("\"warren_format\"") ? .invalid("record does not decode") : .foreign
        }
        if let problem = record.problem(in: info.name) { return .invalid(problem) }
        return .valid(record)
    }

    /// The first write of a new environment: makes its vhost, unless one stands there by the
    /// time this create holds the record's lock. Nil when it made the vhost; otherwise what
    /// stands there now (a create of the same name that came first, or anything else), for the
    /// caller to treat as if its first read had found it.
    ///
    /// Under the record's lock, like `deleteVhost`, for two reasons. Two creates that both
    /// found no vhost would otherwise both write a record, the later over the earlier, even
    /// after the earlier was marked ready. And a create that found no vhost may have found a
    /// DELETE of the same name half done (the broker drops the vhost from its metadata first,
    /// then stops its queues and removes its storage): RabbitMQ 3.10 takes a PUT in that moment
    /// for a new vhost whose storage the running delete then removes, and a quorum queue
    /// declared in it never gets a leader (every call on it hangs); seen with racing creates and
    /// deletes of one name. Under the lock, the PUT waits until that DELETE has returned.
    ///
    /// The team's quota (`teamLimit` environments) is held here too: the name goes into the
    /// team's index (`TeamIndex`) before the vhost is made, or the create is refused with
    /// nothing made.
    package func create(_ record: EnvironmentRecord, vhost: String, teamLimit: Int) async throws -> RecordReading? {
        try await RecordLock(session: session).withLock(vhost) {
            let found = try await read(vhost)
            guard case .absent = found else { return found }
            let index = TeamIndex(session: session)
            try await index.reserve(team: record.team, name: record.spec.name, limit: teamLimit)
            do {
                try await put(record, vhost: vhost, step: "create vhost")
            } catch {
                // Out of the index again only when the vhost surely was not made (a timed-out
                // PUT may have made it): a name left listed counts until the janitor sees.
                if case .absent? = try? await read(vhost) { await index.release(team: record.team, name: record.spec.name) }
                throw error
            }
            return nil
        }
    }

    /// Deletes the vhost, under the record's lock, when `stillWanted` (asked under the lock,
    /// right before) says so; false when it did not. See `create` for why under the lock.
    /// Once the vhost is gone, its name leaves the team's index.
    ///
    /// A vhost the broker protects from deletion (RabbitMQ 4.1 and later, see
    /// `BrokerRelease.protectsVhosts`) answers the DELETE with 412. With `liftingProtection`
    /// the protection is then lifted and the DELETE sent once more, under the same lock: the
    /// caller passes it only when the record it checked in `stillWanted` says the environment
    /// is not protected (a record in `deleting` never is), so Warren lifts only what its record
    /// no longer promises (the broker's half of a protection whose record half was lifted,
    /// or of a create rolled back), and a vhost without protection costs no extra call on any
    /// release. Otherwise (a record that cannot be trusted says nothing Warren may act on), or
    /// when the broker refuses again, it is a `.protected` refusal and the vhost stays.
    package func deleteVhost(_ vhost: String, liftingProtection: Bool = false, when stillWanted: () async throws -> Bool) async throws -> Bool {
        try await RecordLock(session: session).withLock(vhost) {
            guard try await stillWanted() else { return false }
            try await deleteVhostHeld(vhost, liftingProtection: liftingProtection)
            return true
        }
    }

    /// A DELETE's two writes under one hold of the record's lock: `change` marks the record
    /// `deleting` (as `change` does), then `removeUsers` runs and the vhost goes (as
    /// `deleteVhost`, its protection rules included). While the lock is held nothing else
    /// writes the record, so the `deleting` just written is what stands when the vhost goes:
    /// one hold spares the DELETE a second lock and the reads under it. False when the change
    /// left the record short of `deleting`.
    package func markDeletingAndDelete(
        _ vhost: String, incarnation: String, _ change: @Sendable (inout EnvironmentRecord) throws -> Void,
        removingUsers removeUsers: () async throws -> Void
    ) async throws -> Bool {
        try await RecordLock(session: session).withLock(vhost) {
            let record = try await changeHeld(vhost, incarnation: incarnation, step: "mark deleting", change)
            guard record.state == .deleting, !record.spec.protected else { return false }
            try await removeUsers()
            try await deleteVhostHeld(vhost, liftingProtection: true)
            return true
        }
    }

    /// `deleteVhost`'s work, for a caller that holds the record's lock and has checked the record.
    private func deleteVhostHeld(_ vhost: String, liftingProtection: Bool) async throws {
        do {
            do {
                _ = try await session.step("delete vhost") { try await admin.deleteVhost(vhost) }
            } catch let error as ProvisioningError where error.underlying?.status == 412 && liftingProtection {
                _ = try await session.step("lift vhost protection") { try await admin.unprotectVhost(vhost) }
                _ = try await session.step("delete vhost") { try await admin.deleteVhost(vhost) }
            }
        } catch let error as ProvisioningError where error.underlying?.status == 412 {
            let name = EnvironmentNaming.parse(vhost: vhost)?.name ?? vhost
            throw ProvisioningError(
                code: .protected,
                detail: "RabbitMQ refuses to delete the vhost of environment \(name): it is protected from deletion on the broker, and Warren does not lift a protection its record does not let it lift (a record that cannot be trusted says nothing Warren may act on); an operator lifts it on the broker (rabbitmqctl disable_vhost_deletion_protection)",
                step: "delete vhost", underlying: error.underlying)
        }
        if let owner = EnvironmentNaming.parse(vhost: vhost) {
            await TeamIndex(session: session).release(team: owner.team, name: owner.name)
        }
    }

    /// Applies `change` to the record as it is now, under the record's lock, and writes it when
    /// it changed anything. `incarnation` is the one the operation began on. Throws `.notFound`
    /// when the environment is gone, a conflict when it is another incarnation now or when the
    /// change would undo a `deleting`, `.invalidRecord` when the record fails validation.
    @discardableResult
    package func change(
        _ vhost: String, incarnation: String, step: String, _ change: @Sendable (inout EnvironmentRecord) throws -> Void
    ) async throws -> EnvironmentRecord {
        try await RecordLock(session: session).withLock(vhost) {
            try await changeHeld(vhost, incarnation: incarnation, step: step, change)
        }
    }

    /// `change`'s work, for a caller that holds the record's lock already.
    @discardableResult
    func changeHeld(
        _ vhost: String, incarnation: String, step: String, _ change: @Sendable (inout EnvironmentRecord) throws -> Void
    ) async throws -> EnvironmentRecord {
        let name = EnvironmentNaming.parse(vhost: vhost)?.name ?? vhost
        let (before, written) = try await recordInForce(vhost, incarnation: incarnation, name: name)
        var after = before
        try change(&after)
        if before.state == .deleting, after.state != .deleting { throw ProvisioningError.beingDeleted(name) }
        guard after != before || !written else { return before }
        if try await put(after, vhost: vhost, step: step) {
            // The vhost went between the read and the write, and the PUT made it anew:
            // remove the empty shell before anyone takes it for an environment.
            _ = try? await admin.deleteVhost(vhost)
            session.logger.warning("record write found the vhost gone; removed the shell it made", metadata: ["vhost": "\(vhost)"])
            throw ProvisioningError.gone(name)
        }
        return after
    }

    /// The record of `incarnation` as it stands. Two creates that both found no vhost both
    /// write one, whatever their specs: the claim says whose incarnation is in force (its
    /// arguments carry the first declarer's record, and only Warren can declare it). When the
    /// description holds the other create's `creating` record for a moment, the claim's record
    /// is the one the change applies to, and the write puts it back.
    /// Also says whether that record is what the description holds (false: it must be written
    /// back even if the change leaves it as it is).
    func recordInForce(_ vhost: String, incarnation: String, name: String) async throws -> (EnvironmentRecord, written: Bool) {
        let reading = try await read(vhost)
        if case .valid(let found) = reading, found.incarnation != incarnation, found.state == .creating {
            if let holder = try await claimHolder(vhost), holder.problem(in: vhost) == nil, holder.incarnation == incarnation {
                return (holder, false)
            }
        }
        return (try Self.record(reading, incarnation: incarnation, name: name), true)
    }

    /// The record read, when it is the valid record of `incarnation`.
    private static func record(_ reading: RecordReading, incarnation: String, name: String) throws -> EnvironmentRecord {
        switch reading {
        case .absent, .foreign:
            throw ProvisioningError.gone(name)
        case .invalid(let reason):
            throw ProvisioningError.invalidRecord(name, reason)
        case .valid(let record):
            guard record.incarnation == incarnation else { throw ProvisioningError.replaced(name) }
            return record
        }
    }

    /// The vhost's description holds the record. A PUT replaces all of the vhost's metadata,
    /// so every write sends all of it. True when the PUT made the vhost.
    ///
    /// No default queue type is set: Warren declares its own queues with an explicit type, and
    /// a queue a client declares itself stays classic, as the client expects. (A vhost whose
    /// default was quorum made Celery's own `celery` queue a quorum queue, on which its
    /// consumer's global QoS is refused.) The broker keeps a vhost's default from its first PUT,
    /// so environments made with a quorum default keep it.
    @discardableResult
    private func put(_ record: EnvironmentRecord, vhost: String, step: String) async throws -> Bool {
        try await session.step(step) {
            try await admin.putVhost(vhost, description: record.encoded(), tags: [EnvironmentRecord.vhostTag], defaultQueueType: nil)
        }
    }
}

extension ProvisioningError {
    package static func invalidRecord(_ name: String, _ reason: String) -> ProvisioningError {
        ProvisioningError(
            code: .invalidRecord,
            detail: "environment \(name) has a record Warren cannot trust (\(reason)); Warren leaves it as it is: an operator must look at it")
    }
}
