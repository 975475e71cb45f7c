internal import RabbitManagement
import WireFormat

/// The queue settings Warren keeps in a policy rather than in queue arguments: the broker
/// applies a changed policy to a queue that exists, keeping its messages, while arguments are
/// fixed at declaration. Each key is the argument name without "x-".
extension Topology {
    /// A setting a policy holds, with the API field it comes from (to name it in a 409).
    struct PolicySetting: Sendable {
        var key: String
        var field: String
        var value: @Sendable (EnvironmentSpec.Queue, _ deadLetterExchange: String) -> JSONValue?
    }

    /// The policy keys of every setting a policy holds, in the table's order.
    static let policySettings: [PolicySetting] = QueueSetting.all.flatMap { setting in
        setting.broker.filter(\.inPolicy).map { PolicySetting(key: $0.key, field: setting.field, value: $0.value) }
    }

    /// One policy per queue (only one policy applies to a queue: the one of highest priority).
    /// The fixed prefix keeps these names apart from anything else Warren may name, and from
    /// each other: the queue name follows it whole. Tenants never make policies (they get no
    /// management tags), so these are the only ones in the vhost.
    package static func policyName(of queue: String) -> String {
        "\(EnvironmentNaming.reservedResourcePrefix)queue.\(queue)"
    }

    /// The policy's definition; empty when the queue has none of these settings (the broker
    /// refuses an empty definition: such a queue has no policy).
    ///
    /// A queue's policy wins over the vhost's overflow policy (`CeilingPolicies.overflow`), so
    /// it says `reject-publish` itself unless the team chose otherwise: at the operator's
    /// ceiling a publisher is refused, and nothing confirmed is dropped to make room.
    static func policyDefinition(of queue: EnvironmentSpec.Queue, deadLetterExchange: String) -> [String: JSONValue] {
        var definition: [String: JSONValue] = [:]
        for setting in policySettings {
            if let value = setting.value(queue, deadLetterExchange) { definition[setting.key] = value }
        }
        // Not for a stream: a stream ignores a policy with any key it does not take.
        if !definition.isEmpty, definition["overflow"] == nil, queue.type != .stream {
            definition["overflow"] = .string(EnvironmentSpec.Overflow.rejectPublish.rawValue)
        }
        return definition
    }

    /// The API fields of settings that differ between two versions of a queue but that the
    /// queue as declared holds in an argument ("x-message-ttl"): environments made before
    /// Warren used policies. An argument overrides the policy, so such a change would not take.
    package static func argumentHeldChanges(
        from old: EnvironmentSpec.Queue, to new: EnvironmentSpec.Queue, arguments: [String: JSONValue], deadLetterExchange: String
    ) -> [String] {
        var fields: [String] = []
        for setting in policySettings where arguments["x-\(setting.key)"] != nil {
            if setting.value(old, deadLetterExchange) != setting.value(new, deadLetterExchange), !fields.contains(setting.field) {
                fields.append(setting.field)
            }
        }
        return fields
    }

    /// Whether an argument a queue holds, which today's declaration does not send, is one of
    /// a queue made before Warren used policies, and agrees with the spec: a setting a policy
    /// holds today ("x-message-ttl"), with the spec's value. Such a queue is left as it is (its
    /// policy is applied all the same, and the arguments it holds win over it); any other
    /// argument, or another value, makes the queue not Warren's to adopt (see `differences`).
    package static func isEarlierDeclaration(
        argument key: String, holding value: JSONValue, of queue: EnvironmentSpec.Queue, deadLetterExchange: String
    ) -> Bool {
        guard let setting = policySettings.first(where: { "x-\($0.key)" == key }) else { return false }
        return setting.value(queue, deadLetterExchange) == value
    }
}
