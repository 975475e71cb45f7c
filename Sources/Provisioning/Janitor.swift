import FoundationEssentials
import Logging
import RabbitManagement

/// Finishes what a crash interrupted. A Warren killed in the middle of a create leaves a vhost
/// whose record still says `creating`; one killed in a rollback can leave a user without its
/// vhost. Every Warren runs a janitor (at start-up, then periodically); several at once are
/// harmless, since each step is idempotent on the broker.
public struct Janitor: Sendable {
    public struct Report: Sendable, Equatable {
        /// `creating` environments found complete and marked `ready`.
        public var completed = 0
        /// `creating` environments found incomplete, and `deleting` ones, removed.
        public var removed = 0
        /// Users of environments whose vhost no longer exists, removed.
        public var orphanUsers = 0
        /// Users whose scheduled revocation came due, removed.
        public var revoked = 0

        public var isEmpty: Bool { self == Report() }
    }

    let provisioner: Provisioner
    /// How long a create may take before its `creating` record counts as abandoned. Longer
    /// than any create can last (the vhost wait plus a few bounded management calls).
    let grace: Duration

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
        let existing = Set(vhosts.map(\.name))
        ProvisioningMetrics.environments(vhosts.filter { EnvironmentNaming.parse(vhost: $0.name) != nil }.count)

        for user in users {
            guard let vhost = EnvironmentNaming.vhost(ofUser: user.name), !existing.contains(vhost) else { continue }
            if try await provisioner.step("delete user", { try await admin.deleteUser(user.name) }) {
                report.orphanUsers += 1
            }
        }

        let graceSeconds = Double(grace.components.seconds) + Double(grace.components.attoseconds) / 1e18
        for info in vhosts where EnvironmentNaming.parse(vhost: info.name) != nil {
            if let record = EnvironmentRecord.decode(description: info.description), !record.revocations.isEmpty {
                report.revoked += try await provisioner.revokeDue(record, vhost: info.name)
            }
        }
        for info in vhosts {
            guard EnvironmentNaming.parse(vhost: info.name) != nil,
                  let record = EnvironmentRecord.decode(description: info.description)
            else { continue }
            let name = record.spec.name
            if record.state == .deleting {
                // A DELETE was answered, or its Warren died: either way the environment goes.
                if try await provisioner.delete(team: record.team, name: name) { report.removed += 1 }
                continue
            }
            guard record.state == .creating, (record.age() ?? .infinity) > graceSeconds else { continue }
            if let health = try await provisioner.inspect(team: record.team, name: name), health.isComplete {
                var ready = record
                ready.state = .ready
                try await provisioner.write(ready, to: info.name, step: "mark ready")
                report.completed += 1
            } else if try await provisioner.delete(team: record.team, name: name) {
                report.removed += 1
            }
        }
        if !report.isEmpty {
            provisioner.logger.notice("janitor finished interrupted work", metadata: [
                "completed": "\(report.completed)", "removed": "\(report.removed)", "orphan_users": "\(report.orphanUsers)", "revoked": "\(report.revoked)",
            ])
        }
        return report
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
            try? await Task.sleep(for: interval)
        }
    }
}
