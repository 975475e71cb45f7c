import EnvironmentModel
import Provisioning

/// The one check of a create body that needs the broker (its release), apart from the
/// decoding, which needs nothing but the body (and is what the JSON fuzzer compiles).
extension CreateEnvironmentRequest {
    /// Checks the queues against this broker's release (`Provisioner.explicit`): a setting the
    /// release does not take (`QueueSetting.ReleaseRule.since`) is refused, named as the body
    /// names it; then `check(asMade:)`.
    func check(madeBy provisioner: Provisioner) async throws {
        let made: [EnvironmentSpec.Queue]
        do {
            made = try await provisioner.explicit(TopologyAddition(queues: spec.queues)).queues
        } catch let error as ProvisioningError where error.code == .unsupportedByRelease {
            throw Problem.invalidFields(error.fields.map {
                Problem.FieldError(field: singleQueueForm ? Self.singleQueueName($0) : $0, reason: error.fieldReason ?? error.detail)
            })
        }
        try check(asMade: made)
    }
}
