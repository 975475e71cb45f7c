import EnvironmentModel
internal import RabbitManagement

/// What declaring the claim found (see `Claim`).
package enum ClaimOutcome: Sendable {
    /// The claim is held; the record of whoever declared it first (this create's own, or that
    /// of a create of the same spec that came first).
    case held(EnvironmentRecord)
    /// The broker refused the declaration as inequivalent: a create with another spec holds
    /// the name. Its record, when it could be read and is valid.
    case lost(winner: EnvironmentRecord?)
}

/// The claim is the record's twin (see `Claim`), so its owner is the record's: nothing else
/// declares, reads or purges it.
extension EnvironmentRecordStore {
    /// Declares the claim for `record`, on a vhost that runs and where Warren's user has its
    /// permissions. A claim that does not hold a valid record is `.invalidRecord`.
    package func claim(_ vhost: String, for record: EnvironmentRecord) async throws -> ClaimOutcome {
        do {
            _ = try await session.step("claim name") {
                try await session.admin.putQueue(
                    vhost: vhost, name: Claim.queueName, durable: true, autoDelete: false, arguments: Claim.arguments(for: record))
            }
        } catch let error as ProvisioningError where error.underlying?.code == .badRequest {
            let winner = (try? await claimHolder(vhost)) ?? nil
            return .lost(winner: winner.flatMap { $0.problem(in: vhost) == nil ? $0 : nil })
        }
        // The claim carries the record of whoever declared it first (a redeclare does not
        // change its arguments), checked like any other record.
        guard let holder = try await claimHolder(vhost), holder.problem(in: vhost) == nil else {
            throw ProvisioningError.invalidRecord(record.spec.name, "its claim does not hold a valid record")
        }
        return .held(holder)
    }

    /// The record the claim carries, as decoded (unchecked); nil when there is no claim or it
    /// carries none.
    package func claimHolder(_ vhost: String) async throws -> EnvironmentRecord? {
        let queue = try await session.step("read claim") { try await session.admin.queue(vhost: vhost, name: Claim.queueName) }
        return queue.flatMap(Claim.record(in:))
    }

    /// Empties the claim of whatever a tenant stored in it (it never holds a message of
    /// Warren's; its ceilings refuse new ones).
    package func purgeClaim(_ vhost: String) async throws {
        _ = try await session.step("purge claim") { try await session.admin.purgeQueue(vhost: vhost, name: Claim.queueName) }
    }
}
