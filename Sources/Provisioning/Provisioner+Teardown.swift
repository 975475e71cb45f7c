import BrokerState
import EnvironmentModel
import Locking
internal import RabbitManagement

extension Provisioner {
    /// Removes the environment's users, then its vhost and everything in it. Works on complete,
    /// half-made and drifted environments alike. False when there was nothing to delete: no
    /// vhost, or one whose description is not a Warren record (Warren deletes only what it
    /// made). Unless `force`, refuses (`.messagesPending`) when its queues hold messages,
    /// counted by the queues themselves at the moment of the delete. A record that fails
    /// validation is never read for what to delete: with `force` the vhost found under the
    /// team's own name goes, with all its users; without, the answer says why not.
    ///
    /// With `finishInBackground` (an asynchronous delete) it returns once the record says
    /// `deleting` (after the check for messages), and the removal goes on in the background;
    /// what it cannot finish, the janitor finishes after the grace.
    ///
    /// A protected environment (`spec.protected`) is refused (`.protected`) with nothing
    /// changed, `force` or not: checked on the record read first, and again under the record's
    /// lock as it is marked `deleting`, so a protection that lands in between wins. A
    /// `deleting` record is never protected (protection refuses a record in `deleting`), so
    /// what follows that mark may lift the broker's own protection of the vhost.
    public func delete(team: String, name: String, force: Bool = true, finishInBackground: Bool = false) async throws -> Bool {
        try await measured("delete") {
            let vhost = EnvironmentNaming.vhost(team: team, name: name)
            switch try await records.read(vhost) {
            case .absent, .foreign:
                return false
            case .invalid(let reason):
                logger.error("environment record fails validation", metadata: ["vhost": "\(vhost)", "reason": "\(reason)"])
                guard force else { throw ProvisioningError.invalidRecord(name, reason + "; DELETE with ?force=true removes its vhost and users") }
                // A vhost the broker protects would refuse the delete below after the users had
                // gone: refused first, with nothing changed.
                if try await step("read vhost", { try await admin.vhost(vhost) })?.protectedFromDeletion == true {
                    throw ProvisioningError(
                        code: .protected,
                        detail: "RabbitMQ protects the vhost of environment \(name) from deletion, and its record cannot be trusted, so Warren does not lift that protection; an operator lifts it on the broker (rabbitmqctl disable_vhost_deletion_protection), then DELETE with ?force=true removes it")
                }
                try await removeUsers(of: vhost)
                // Whether it was protected cannot be read from a record that cannot be trusted,
                // so the broker's protection (if any) is not lifted: the broker's 412 is the answer.
                _ = try await records.deleteVhost(vhost, liftingProtection: false) { true }
                return true
            case .valid(let record):
                if record.spec.protected { throw ProvisioningError.protected(name) }
                if record.state != .deleting, !force { try await refuseIfMessagesPending(Environment(record: record, vhost: vhost)) }
                // Said on the broker before anything goes: a Warren killed from here on leaves an
                // environment the janitor knows to finish deleting, not a `ready` one with parts gone.
                let markDeleting: @Sendable (inout EnvironmentRecord) throws -> Void = {
                    // Protected since the read above: the protection wins, nothing changes.
                    guard !$0.spec.protected else { throw ProvisioningError.protected(name) }
                    $0.state = .deleting
                }
                guard finishInBackground else {
                    // The mark, the users and the vhost under one hold of the record's lock.
                    do {
                        var users = 0
                        guard try await records.markDeletingAndDelete(vhost, incarnation: record.incarnation, markDeleting, removingUsers: {
                            users = try await removeUsers(of: vhost)
                        }) else { return true }
                        logger.info("environment deleted", metadata: ["vhost": "\(vhost)", "users": "\(users)"])
                    } catch let error as ProvisioningError where error.code == .notFound {
                        return false
                    }
                    return true
                }
                do {
                    try await records.change(vhost, incarnation: record.incarnation, step: "mark deleting", markDeleting)
                } catch let error as ProvisioningError where error.code == .notFound {
                    return false
                }
                background.start { [self] in
                    do {
                        try await finishDelete(vhost, incarnation: record.incarnation)
                    } catch {
                        logger.warning("asynchronous delete did not finish; the janitor finishes it", metadata: [
                            "vhost": "\(vhost)", "error": "\(error)",
                        ])
                    }
                }
                return true
            }
        }
    }

    /// Removes a vhost whose record says `deleting`, with its users. Before each destructive
    /// step the record is read again: only the same incarnation, still `deleting` and not
    /// protected, goes. On RabbitMQ 4.1 and later a vhost the broker still protects (the broker
    /// half of a protection whose record half was lifted, or of a create rolled back) has that
    /// protection lifted before it is deleted, under the record's lock and only because the
    /// record, read right there, says unprotected (see `EnvironmentRecordStore.deleteVhost`).
    func finishDelete(_ vhost: String, incarnation: String) async throws {
        guard try await stillDeleting(vhost, incarnation: incarnation) else { return }
        let users: Int
        do {
            users = try await removeUsers(of: vhost)
        } catch let error as ProvisioningError where error.underlying?.code == .notFound {
            // The vhost went meanwhile: another Warren (or its janitor) finished this delete.
            guard try await stillDeleting(vhost, incarnation: incarnation) else { return }
            throw error
        }
        // Once more right before the vhost goes, under the record's lock.
        guard try await records.deleteVhost(vhost, liftingProtection: true, when: { try await stillDeleting(vhost, incarnation: incarnation) })
        else { return }
        logger.info("environment deleted", metadata: ["vhost": "\(vhost)", "users": "\(users)"])
    }

    /// True while the vhost holds this incarnation's record in `deleting`; false once the vhost
    /// is gone (another delete finished first: the work is done); a conflict when anything else
    /// stands there now, which is then left as it is.
    private func stillDeleting(_ vhost: String, incarnation: String) async throws -> Bool {
        switch try await records.read(vhost) {
        case .absent:
            return false
        case .valid(let record) where record.incarnation == incarnation && record.state == .deleting:
            // Never so (see `delete`); should a record say both, protection wins.
            guard !record.spec.protected else { throw ProvisioningError.protected(record.spec.name) }
            return true
        default:
            throw ProvisioningError(code: .conflict, detail: "environment at \(vhost) changed while it was being deleted; it was left as it is", step: "delete vhost")
        }
    }

    /// Deletes every user of the vhost (by name, whatever its incarnation) that holds permissions
    /// on it: one listing of this vhost's permissions, whose size is this environment's, never the
    /// broker's (a listing of every user on a broker with 85,000 of them timed out). A user whose
    /// permissions never arrived (a crash between the two calls of its making) is not found here:
    /// once the vhost is gone it is a user without permissions, which the janitor's orphan phase
    /// removes. Users go before the vhost: if this is interrupted, the vhost is still there for a
    /// retried delete to find.
    @discardableResult
    private func removeUsers(of vhost: String) async throws -> Int {
        let permitted = try await step("read permissions") { try await admin.permissions(vhost: vhost) }
        let users = Set(permitted.map(\.user)).filter { EnvironmentNaming.isUser($0, of: vhost) }
        try await deleteUsers(users.sorted())
        return users.count
    }

    /// How many names go in one `POST /api/users/bulk-delete`, and how many such calls may be in
    /// flight. The broker deletes a call's users one after the other, so a batch is a bounded
    /// piece of work that ends well inside a management timeout; two calls keep the broker busy
    /// for one delete without crowding out everyone else's calls.
    static let userBatch = 100
    static let userBatchesInFlight = 2

    /// Deletes the users in batches, a bounded number of calls in flight. Names already gone are
    /// no failure. RabbitMQ 3.10 answers a batch that names a user already gone with 400
    /// (`no_such_user`), having deleted the names before it and not those after (4.0 and 4.3
    /// skip it); such a batch is finished one user at a time, where an absent user is a 404 the
    /// client takes for done (one at a time, so the bound on calls in flight still holds).
    func deleteUsers(_ names: [String]) async throws {
        let admin = admin
        try await eachConcurrently(names.batches(of: Self.userBatch), limit: Self.userBatchesInFlight) { [self] batch in
            do {
                try await step("delete users") { try await admin.deleteUsers(batch) }
            } catch let error as ProvisioningError where error.underlying?.code == .badRequest {
                for user in batch { _ = try await step("delete user") { try await admin.deleteUser(user) } }
            }
        }
    }

    /// The statistics (`messages` of a queue) lag by seconds, so they only refuse early; the
    /// exact answer comes from each queue itself at the moment of the delete: one message is
    /// fetched and requeued at once, so it stays (marked redelivered; in a quorum queue the
    /// return counts as one delivery). Neither the broker's if-empty delete (quorum queues
    /// refuse it, and on a classic queue it removes the queue from under a concurrent PATCH)
    /// nor anything else the management API offers counts without that lag.
    ///
    /// The statistics of every queue are read at once (a bounded number in flight). The queues
    /// themselves are asked only when the statistics see no message, one after the other, up to
    /// the first that holds one: each ask returns a message, which in a quorum queue counts as a
    /// delivery, so a DELETE refused again and again must not ask a queue whose messages the
    /// statistics already show (the 20th ask would dead-letter or drop its head on RabbitMQ 4).
    private func refuseIfMessagesPending(_ environment: Environment) async throws {
        let vhost = environment.vhost
        let queues = Topology(environment.spec).queues
        let counted = PThreadMutex<[String: Int]>([:])
        try await concurrently(limit: Self.queueChecksInFlight, queues.map { queue in
            { @Sendable [self] in
                if let info = try await step("read queue", { try await admin.queue(vhost: vhost, name: queue.name) }),
                   let messages = info.messages, messages > 0 {
                    counted.withLock { $0[queue.name] = messages }
                }
            }
        })
        let pending = queues.compactMap { queue in counted.withLock { $0[queue.name] }.map { (queue.name, $0) } }
        if !pending.isEmpty {
            let total = pending.reduce(0) { $0 + $1.1 }
            throw ProvisioningError(
                code: .messagesPending,
                detail: "\(total) messages would be lost (\(pending.map { "\($0.0): \($0.1)" }.joined(separator: ", "))); delete with ?force=true to drop them")
        }
        for queue in queues where try await step("check queue empty", { try await holdsMessagesNow(vhost: vhost, queue: queue) }) {
            throw ProvisioningError(
                code: .messagesPending,
                detail: "messages would be lost (queue \(queue.name) holds messages); delete with ?force=true to drop them")
        }
    }

    /// How many of a delete's reads of queue statistics may be in flight at once.
    static let queueChecksInFlight = 8

    /// Whether the queue holds a message now, by the queue itself.
    private func holdsMessagesNow(vhost: String, queue: Topology.QueuePlan) async throws -> Bool {
        do {
            return try await holdsMessages(vhost: vhost, queue: queue.name)
        } catch let error as ManagementError where error.code == .badRequest && (queue.isSingleActiveConsumerQuorum || queue.isStream) {
            // A stream refuses basic.get on every release ("not supported by stream
            // queues"): the statistics answer for it too.
            // RabbitMQ 4 refuses basic.get on such a queue (RESOURCE_LOCKED), and nothing
            // else counts its messages without the lag: the statistics answer for it.
            return false
        }
    }
}

extension Provisioner {
    /// Fetching a message needs Warren's own permissions in the vhost, which a create grants
    /// right after it made the vhost: a DELETE that comes in between is refused (401). No
    /// tenant user exists before that grant, but the permissions are granted here all the same
    /// and the queue asked once more; a vhost gone meanwhile (the grant answers 400) holds nothing.
    fileprivate func holdsMessages(vhost: String, queue: String) async throws -> Bool {
        do {
            return try await admin.holdsMessages(vhost: vhost, name: queue)
        } catch let error as ManagementError where error.code == .unauthorized {
            do {
                try await admin.putPermissions(vhost: vhost, user: serviceUser, configure: ".*", write: ".*", read: ".*")
            } catch let grant as ManagementError where grant.code == .badRequest || grant.code == .notFound {
                return false
            }
            return try await admin.holdsMessages(vhost: vhost, name: queue)
        }
    }
}

extension Topology.QueuePlan {
    fileprivate var isStream: Bool {
        arguments["x-queue-type"] == .string("stream")
    }

    fileprivate var isSingleActiveConsumerQuorum: Bool {
        arguments["x-queue-type"] == .string("quorum") && arguments["x-single-active-consumer"] == .bool(true)
    }
}
