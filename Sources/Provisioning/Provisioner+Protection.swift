import BrokerState
import EnvironmentModel
internal import RabbitManagement

/// Protecting an environment from deletion, and lifting that protection (see
/// `EnvironmentRecordStore.setProtection` for the order of the two halves, record and broker,
/// and what each failure leaves).
extension Provisioner {
    /// Protects the environment (`protected`) or lifts its protection, and answers what it is
    /// afterwards; nil when there is no such environment. Taken in every state but `deleting`
    /// (a conflict): a `creating` or `failed` environment may be protected or unprotected
    /// like a ready one, so that the owner of a `failed` protected one can lift the
    /// protection and delete it (nothing else deletes it: not the janitor either).
    public func setProtection(team: String, name: String, protected: Bool) async throws -> EnvironmentHealth? {
        try await measured("protect") {
            guard let (environment, record) = try await loadForChange(team: team, name: name, allowingFailed: true) else { return nil }
            let vhost = environment.vhost
            let brokerEnforces = try await brokerProtectsVhosts()
            try await whileItExists(environment, incarnation: record.incarnation) {
                _ = try await records.setProtection(vhost, incarnation: record.incarnation, protected: protected, brokerEnforces: brokerEnforces)
            }
            logger.info(protected ? "environment protected" : "environment protection lifted", metadata: [
                "vhost": "\(vhost)", "by_broker": "\(brokerEnforces)",
            ])
            return try await inspect(team: team, name: name)
        }
    }

    /// Whether this broker's release protects vhosts from deletion itself (RabbitMQ 4.1 and
    /// later, see `BrokerRelease.protectsVhosts`); otherwise Warren alone does.
    func brokerProtectsVhosts() async throws -> Bool {
        BrokerRelease.protectsVhosts(try await brokerVersion())
    }

    /// The broker's stream protocol port (read once, then kept), for answers about streams.
    public func streamPort() async throws -> Int? {
        try await step("read listeners") { try await release.streamPort { try await admin.streamPort() } }
    }

    /// The broker's release (read once, then kept), for answers that say what it enforces.
    public func brokerRelease() async throws -> BrokerVersion {
        try await brokerVersion()
    }
}
