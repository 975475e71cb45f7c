import EnvironmentModel
import Logging
import Provisioning

/// Finds the environment a platform's instance id stands for, and decides whether this
/// platform may act on it. The answer a platform gets from it is never "gone" while something
/// of its instance remains: a platform takes 410 for success and forgets the credentials.
///
/// - Nothing under the id's name: absent (the platform's instance is not there).
/// - Something that is not this platform's instance (a /v1 environment, another platform's
///   instance, another instance id's record): other; to this platform its instance does not
///   exist, and nothing of it is touched.
/// - This platform's instance, sealed with the current secret or, during a rotation, the
///   previous one: mine.
/// - Something Warren cannot act on although it may well be this platform's instance: a seal
///   made with neither secret (the secret changed without a rotation, or the record was
///   altered), a record that fails validation, or a record naming a platform the platforms
///   file no longer has (a platform renamed). An error (500) whose description says why,
///   logged at error level; the platform sees a failure and retries, the operator fixes it.
struct OSBInstanceLookup: Sendable {
    let secrets: OSBSecrets
    /// To tell a platform renamed (the record names a platform no longer in the file) from
    /// another platform's instance.
    let platforms: PlatformStore?

    enum Found {
        case absent
        case other
        case mine(PlatformEnvironment)
    }

    func find(_ provisioner: Provisioner, _ context: OSBContext, instanceID: String) async throws -> Found {
        let name = OSBNaming.environmentName(instanceID: instanceID)
        let environment: PlatformEnvironment
        switch try await provisioner.platformEnvironment(team: context.team, name: name) {
        case .absent:
            return .absent
        case .untrusted(let reason):
            throw refusal(context, instanceID: instanceID, "the environment it maps to (\(name)) cannot be trusted: \(reason)")
        case .found(let found):
            environment = found
        }
        guard let recorded = environment.platform, recorded.instanceID == instanceID else { return .other }
        guard recorded.platform == context.platform else {
            if platforms?.knows(platform: recorded.platform) ?? false { return .other }
            throw refusal(context, instanceID: instanceID,
                          "it was provisioned by platform '\(recorded.platform)', which the platforms file no longer names "
                          + "(renamed?); give that platform its old name again (and SIGHUP) to act on it")
        }
        switch secrets.verdict(recorded, team: context.team, name: name) {
        case .current, .previous:
            return .mine(environment)
        case .neither:
            throw refusal(context, instanceID: instanceID,
                          "its record's seal does not verify with this Warren's WARREN_OSB_SECRET_FILE (the secret changed "
                          + "without a rotation, or the record was altered); see the secret rotation in the docs")
        }
    }

    private func refusal(_ context: OSBContext, instanceID: String, _ reason: String) -> OSBError {
        context.logger.error("instance cannot be acted on; the platform is answered an error, never 'gone'", metadata: [
            "instance_id": "\(instanceID)", "reason": "\(reason)",
        ])
        return OSBError.unverifiable("instance \(instanceID) cannot be acted on: \(reason)")
    }
}
