import EnvironmentModel
internal import RabbitManagement
import WireFormat

/// A lease on one environment's record, held across Warren instances, so that a read-change-
/// write of the record is never interleaved with another (the management API has no
/// compare-and-set for a vhost's description).
///
/// The broker's atomic operation is a queue declaration: a redeclare with a different
/// `x-max-length` is refused (400, "inequivalent arg"). So the lock is a queue
/// "lock.{vhost}" in Warren's own vhost whose `x-max-length` is the holder's random token:
/// whoever declares it first holds it, everyone else is refused until the holder deletes it.
/// `x-expires` makes it a lease: a holder that dies leaves a queue the broker deletes by itself
/// once unused for `lease`. The queues live in `EnvironmentNaming.systemVhost`, where no
/// tenant has permissions and no tenant's vhost limits apply.
struct RecordLock: Sendable {
    let session: BrokerSession

    package init(session: BrokerSession) { self.session = session }
    /// How long a dead holder keeps the lock (`BrokerSession.recordLockLease`).
    var lease: Duration { session.recordLockLease }
    /// How long to wait for a lock another operation holds before answering `busy` (a live
    /// holder needs milliseconds; only a dead one makes anyone wait this long).
    var wait: Duration = .seconds(8)

    /// `key`: the vhost for an environment's record; `team.{team}` for a team's index (no
    /// vhost name starts with `team.`).
    func withLock<T: Sendable>(_ key: String, _ body: () async throws -> T) async throws -> T {
        let name = "lock.\(key)"
        var generator = SystemRandomNumberGenerator()
        let token = Int.random(in: 1...(1 << 47), using: &generator)
        // This process's turn first (see `LocalLocks`), then the broker's lock, both within
        // the one `wait`: a waiter never waits longer for being in a local queue.
        let deadline = ContinuousClock.now + wait
        guard await session.localLocks.acquire(key, within: wait) else { throw busy }
        defer { session.localLocks.release(key) }
        try await acquire(name, token: token, deadline: deadline)
        do {
            let result = try await body()
            await release(name, token: token)
            return result
        } catch {
            await release(name, token: token)
            throw error
        }
    }

    private var busy: ProvisioningError {
        ProvisioningError(code: .busy, detail: "another operation on this environment did not finish in time; try again", step: "lock record")
    }

    private func acquire(_ name: String, token: Int, deadline: ContinuousClock.Instant) async throws {
        let admin = session.admin
        var generator = SystemRandomNumberGenerator()
        let arguments: [String: JSONValue] = [
            "x-queue-type": "classic", "x-max-length": .int(token),
            "x-expires": .int(Int(lease / .milliseconds(1))),
        ]
        let clock = ContinuousClock()
        var pause = Duration.milliseconds(2)
        var ensured = false
        while true {
            do {
                _ = try await session.step("lock record") {
                    try await admin.putQueue(vhost: EnvironmentNaming.systemVhost, name: name, durable: true, autoDelete: false, arguments: arguments)
                }
                return
            } catch let error as ProvisioningError
                where !ensured && (error.underlying?.code == .notFound || error.underlying?.code == .unauthorized) {
                // No system vhost yet, or one another Warren user made (this one has no
                // permissions there yet): make sure of both, once.
                try await ensureSystemVhost()
                ensured = true
            } catch let error as ProvisioningError where error.underlying?.code == .badRequest {
                // Held by another operation (its token differs).
                guard clock.now + pause < deadline else { throw busy }
                // Jitter, so that waiters on two instances do not retry in step.
                let jitter = Duration.microseconds(Int.random(in: 0...Int(pause / .microseconds(1)), using: &generator))
                try await Task.sleep(for: pause + jitter)
                pause = min(pause * 2, .milliseconds(100))
            }
        }
    }

    /// Best effort: a lock left behind holds up every operation on the environment (503 busy)
    /// until it expires after `lease`. A failed DELETE is sent again only while the lock still
    /// holds this holder's token: a DELETE that went through but whose answer was lost may
    /// already have let another operation take the lock.
    private func release(_ name: String, token: Int) async {
        let admin = session.admin
        let vhost = EnvironmentNaming.systemVhost
        do {
            _ = try await session.step("unlock record") { try await admin.deleteQueue(vhost: vhost, name: name) }
            return
        } catch {}
        do {
            let lock = try await session.step("read record lock") { try await admin.queue(vhost: vhost, name: name) }
            guard let lock, lock.arguments["x-max-length"] == .int(token) else { return }
            _ = try await session.step("unlock record") { try await admin.deleteQueue(vhost: vhost, name: name) }
        } catch {
            session.logger.warning("record lock not released; it expires by itself", metadata: ["lock": "\(name)", "error": "\(error)"])
        }
    }

    /// Warren's own vhost, made the first time a lock is needed. Only Warren's users get
    /// permissions in it.
    private func ensureSystemVhost() async throws {
        let admin = session.admin
        let vhost = EnvironmentNaming.systemVhost
        if try await session.step("read system vhost", { try await admin.vhost(vhost) }) == nil {
            _ = try await session.step("create system vhost") {
                try await admin.putVhost(vhost, description: "Warren's own objects (record locks); no tenant has permissions here",
                                         tags: [EnvironmentRecord.vhostTag], defaultQueueType: nil)
            }
        }
        try await session.waitUntilRunning(vhost)
        try await session.grantServiceUser(in: vhost)
    }
}
