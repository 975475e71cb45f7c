import EnvironmentModel
internal import RabbitManagement

/// Deletion protection has two halves: the record's `spec.protected`, which Warren enforces on
/// every release (a DELETE, the janitor and a rollback read it under the record's lock before
/// anything goes), and, from RabbitMQ 4.1 (`brokerEnforces`, see
/// `BrokerRelease.protectsVhosts`), the vhost's own deletion protection, which makes the broker
/// refuse a delete from anyone (an operator's `rabbitmqctl delete_vhost` too).
///
/// The two are written in the order that keeps the environment at least as protected as any
/// caller has been told, whatever fails in between: protecting writes the record first, then
/// the broker; lifting lifts the broker first, then the record. Both happen under the record's
/// lock, so no DELETE (which marks `deleting` under it), record write or other protection
/// change comes between the two steps.
extension EnvironmentRecordStore {
    /// Protects the environment of `incarnation` (`protected`), or lifts its protection, and
    /// returns its record as it is afterwards. Refused (a conflict) once a DELETE has begun:
    /// protection is about an environment that stays.
    ///
    /// Protecting: the record first, then the broker.
    /// - The record write fails: nothing changed (or, a write whose answer was lost, the record
    ///   says protected): the caller sees an error and the environment is as protected as before,
    ///   or more.
    /// - The record is written and the broker call fails: Warren refuses every DELETE from now
    ///   on (it reads the record), only a delete made on the broker itself is not yet refused;
    ///   the caller sees an error, so it was not told more than that. `reconcile`, a repeated
    ///   create, or the same PATCH again puts the broker's half in place.
    ///
    /// Lifting: the broker first, then the record.
    /// - The broker call fails: nothing changed (or the broker's half is lifted and the record
    ///   still says protected: Warren still refuses a DELETE, and `reconcile` protects the vhost
    ///   again).
    /// - The broker's half is lifted and the record write fails: the broker's half is put back
    ///   at once (best effort; if that fails too, the state is the one just above). The caller
    ///   sees an error and the record still says protected, so Warren still refuses a DELETE.
    ///
    /// The other order would be worse at each step: a record that says unprotected over a vhost
    /// the broker still protects is deleted by Warren's next DELETE (Warren lifts what its
    /// record no longer promises), so lifting the record first and failing on the broker would
    /// leave an environment Warren deletes while the caller, told of a failure, believes it
    /// protected.
    package func setProtection(
        _ vhost: String, incarnation: String, protected: Bool, brokerEnforces: Bool
    ) async throws -> EnvironmentRecord {
        let name = EnvironmentNaming.parse(vhost: vhost)?.name ?? vhost
        let admin = session.admin
        return try await RecordLock(session: session).withLock(vhost) {
            if protected {
                let after = try await changeHeld(vhost, incarnation: incarnation, step: "record protection") {
                    guard $0.state != .deleting else { throw ProvisioningError.beingDeleted(name) }
                    $0.spec.protected = true
                }
                if brokerEnforces {
                    try await session.step("protect vhost") { try await admin.protectVhost(vhost) }
                }
                return after
            }
            // Checked before the broker's half is touched: a refusal changes nothing.
            let (current, _) = try await recordInForce(vhost, incarnation: incarnation, name: name)
            guard current.state != .deleting else { throw ProvisioningError.beingDeleted(name) }
            if brokerEnforces {
                _ = try await session.step("lift vhost protection") { try await admin.unprotectVhost(vhost) }
            }
            do {
                return try await changeHeld(vhost, incarnation: incarnation, step: "record protection") {
                    guard $0.state != .deleting else { throw ProvisioningError.beingDeleted(name) }
                    $0.spec.protected = false
                }
            } catch {
                if brokerEnforces, current.spec.protected {
                    do {
                        try await session.step("protect vhost") { try await admin.protectVhost(vhost) }
                    } catch {
                        session.logger.error("vhost protection lifted on the broker while the record still says protected; reconcile restores it", metadata: [
                            "vhost": "\(vhost)", "error": "\(error)",
                        ])
                    }
                }
                throw error
            }
        }
    }

    /// Puts the broker's half of the protection in place when the record of `incarnation` says
    /// the environment is protected (read under the record's lock, so a protection lifted
    /// meanwhile is not put back); does nothing on a broker that cannot protect a vhost. True
    /// when it protected the vhost on the broker. For a create (after the record that asks for
    /// protection, before it is marked ready), `reconcile` and the janitor completing a create.
    @discardableResult
    package func applyBrokerProtection(_ vhost: String, incarnation: String, brokerEnforces: Bool) async throws -> Bool {
        guard brokerEnforces else { return false }
        let name = EnvironmentNaming.parse(vhost: vhost)?.name ?? vhost
        let admin = session.admin
        return try await RecordLock(session: session).withLock(vhost) {
            let (record, _) = try await recordInForce(vhost, incarnation: incarnation, name: name)
            guard record.spec.protected, record.state != .deleting else { return false }
            try await session.step("protect vhost") { try await admin.protectVhost(vhost) }
            return true
        }
    }
}
