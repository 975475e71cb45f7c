import BrokerState
import EnvironmentModel
/// What the Open Service Broker API (/v2) needs of an environment beyond what /v1 shows: the
/// platform instance its record names, where it is in its life, and its incarnation (which
/// binding user names start with). Read from the record, validated like every record read.
public struct PlatformEnvironment: Sendable {
    public var environment: Environment
    public var platform: PlatformInstance?
    public var state: EnvironmentRecord.State
    public var failureReason: String?
    public var incarnation: String

    /// Whether this environment is the instance `instanceID` that `platform` provisioned. A
    /// record without a platform (made through /v1), or naming another platform or instance,
    /// is never acted on through /v2, whatever name it sits under.
    public func isInstance(_ instanceID: String, of platform: String) -> Bool {
        guard let recorded = self.platform else { return false }
        return recorded.instanceID == instanceID && recorded.platform == platform
    }
}

/// A lookup by name: nothing there, something Warren may not act on, or the environment.
public enum PlatformEnvironmentReading: Sendable {
    case absent
    /// A vhost that is not Warren's, or a record that fails validation (the reason).
    case untrusted(String)
    case found(PlatformEnvironment)
}

extension Provisioner {
    /// How long a caller may wait for a create made in the background to settle: its deadline
    /// (steps past it fail), plus a margin for the calls in flight then and the write of its
    /// outcome. A record still `creating` after that belongs to background work that could not
    /// even record its failure (the janitor finishes it after the grace).
    public var waitLimit: Duration { createDeadline + .seconds(10) }

    /// The environment `name` of `team`, with its platform instance and state.
    public func platformEnvironment(team: String, name: String) async throws -> PlatformEnvironmentReading {
        let vhost = EnvironmentNaming.vhost(team: team, name: name)
        switch try await records.read(vhost) {
        case .absent:
            return .absent
        case .foreign:
            return .untrusted("vhost \(vhost) is not managed by Warren")
        case .invalid(let reason):
            logger.error("environment record fails validation", metadata: ["vhost": "\(vhost)", "reason": "\(reason)"])
            return .untrusted(reason)
        case .valid(let record):
            return .found(PlatformEnvironment(
                environment: Environment(record: record, vhost: vhost), platform: record.platform, state: record.state,
                failureReason: record.failureReason, incarnation: record.incarnation))
        }
    }

    /// Every environment on the broker that a platform provisioned (its record names a
    /// platform instance), from one listing of the vhosts. Records that fail validation are
    /// left out (the janitor logs them).
    public func platformEnvironments() async throws -> [PlatformEnvironment] {
        let vhosts = try await step("list vhosts") { try await admin.vhosts() }
        return vhosts.compactMap { info in
            guard EnvironmentNaming.parse(vhost: info.name) != nil, case .valid(let record) = EnvironmentRecordStore.reading(info),
                  record.platform != nil
            else { return nil }
            return PlatformEnvironment(
                environment: Environment(record: record, vhost: info.name), platform: record.platform, state: record.state,
                failureReason: record.failureReason, incarnation: record.incarnation)
        }
    }

    /// Writes a new seal on the instance's record (a secret rotation).
    public func reseal(_ environment: PlatformEnvironment, seal: String) async throws {
        try await changePlatform(of: environment, step: "reseal record") { $0.seal = seal }
    }

    /// Records a new plan for the instance (after a plan change grew its topology).
    public func recordPlan(_ environment: PlatformEnvironment, planID: String) async throws {
        try await changePlatform(of: environment, step: "record plan") { $0.planID = planID }
    }

    /// Changes the platform instance in the record: only the same incarnation, still the same
    /// platform instance (platform and id), is changed.
    private func changePlatform(of environment: PlatformEnvironment, step: String, _ edit: @escaping @Sendable (inout PlatformInstance) -> Void) async throws {
        guard let platform = environment.platform else { return }
        try await records.change(environment.environment.vhost, incarnation: environment.incarnation, step: step) { record in
            guard var recorded = record.platform, recorded.instanceID == platform.instanceID, recorded.platform == platform.platform else {
                throw ProvisioningError.replaced(environment.environment.name)
            }
            edit(&recorded)
            record.platform = recorded
        }
    }
}
