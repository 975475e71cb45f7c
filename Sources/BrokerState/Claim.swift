import EnvironmentModel
internal import RabbitManagement
import WireFormat

/// The broker has no race-free create for a vhost: several simultaneous PUTs all succeed, and
/// the last description written wins. A queue declaration is atomic, though, and a redeclare
/// with a different `x-max-length` is refused (400, "inequivalent arg"). So every environment
/// has a small classic queue whose `x-max-length` is a hash of its spec
/// (`EnvironmentRecord.claimHash(of:)`): the first create to
/// declare it owns the name, a create with another spec is refused by the broker itself, and
/// creates with the same spec all pass. The winner's record rides along in an argument the
/// broker stores but does not compare, so a loser can say what differs.
enum Claim {
    static let queueName = "warren.claim"
    static let recordArgument = "x-warren-record"

    static func arguments(for record: EnvironmentRecord) -> [String: JSONValue] {
        [
            "x-queue-type": "classic",
            "x-max-length": .int(record.claim),
            recordArgument: .string(record.encoded()),
        ]
    }

    /// The record of whoever declared the claim queue first.
    static func record(in queue: QueueInfo) -> EnvironmentRecord? {
        guard case .string(let text) = queue.arguments[recordArgument] else { return nil }
        return EnvironmentRecord.decode(description: text)
    }
}
