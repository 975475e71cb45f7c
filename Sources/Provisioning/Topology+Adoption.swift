import BrokerState
import EnvironmentModel
internal import RabbitManagement
import WireFormat

/// Whether a queue or exchange that is already there (a tenant declared it before a PATCH, a
/// reconcile or a repeated create named it) may be taken as Warren's own. Only when it is
/// exactly what Warren would have made: a queue that is transient, auto-delete, exclusive,
/// expiring or limited by an argument would break what the API reports and promises (GET
/// says durable; a 10-byte x-max-length-bytes drops every message) while Warren cannot
/// change it in place. The broker's own redeclaration check is not enough: it ignores
/// arguments it does not compare (which ones depends on the release) and answers 204.
extension Topology {
    /// One property in which an existing object differs: how it is, and how Warren makes it.
    struct Difference: Sendable, Hashable {
        var found: String
        var wanted: String
    }

    /// The differences of an existing queue from the plan; empty when it can be adopted.
    /// `specQueue` is the spec's queue of that name (nil for a dead-letter queue): an earlier
    /// Warren's declaration of it, holding a policy's settings as arguments, is accepted when
    /// what it holds is what the spec says (see `isEarlierDeclaration`).
    static func differences(
        of info: QueueInfo, from plan: QueuePlan, specQueue: EnvironmentSpec.Queue?, deadLetterExchange: String
    ) -> [Difference] {
        var differences: [Difference] = []
        // Warren always declares durable, never auto-delete, never exclusive.
        for (property, found, wanted) in [("durable", info.durable, true), ("auto_delete", info.autoDelete, false), ("exclusive", info.exclusive, false)]
        where found != wanted {
            differences.append(Difference(found: "\(property) \(found)", wanted: "\(property) \(wanted)"))
        }
        // The type is compared as the broker reports it: a classic queue declared without
        // x-queue-type has no such argument.
        let wantedType = plan.arguments["x-queue-type"]?.stringValue ?? "classic"
        if info.type != wantedType {
            differences.append(Difference(found: "type \(info.type)", wanted: "type \(wantedType)"))
        }
        let keys = Set(info.arguments.keys).union(plan.arguments.keys).subtracting(["x-queue-type"]).sorted()
        for key in keys {
            let found = info.arguments[key]
            let wanted = plan.arguments[key]
            if same(found, wanted) { continue }
            if wanted == nil, let found, let specQueue,
                isEarlierDeclaration(argument: key, holding: found, of: specQueue, deadLetterExchange: deadLetterExchange) {
                continue
            }
            differences.append(Difference(found: describe(key, found), wanted: describe(key, wanted)))
        }
        return differences
    }

    /// The differences of an existing exchange from the plan; empty when it can be adopted.
    static func differences(of info: ExchangeInfo, from plan: ExchangePlan) -> [Difference] {
        var differences: [Difference] = []
        if info.type != plan.type { differences.append(Difference(found: "type \(info.type)", wanted: "type \(plan.type)")) }
        for (property, found, wanted) in [
            ("durable", info.durable, true), ("auto_delete", info.autoDelete, false), ("internal", info.internal, false),
        ] where found != wanted {
            differences.append(Difference(found: "\(property) \(found)", wanted: "\(property) \(wanted)"))
        }
        // Warren declares exchanges without arguments, but for a super stream's.
        for key in Set(info.arguments.keys).union(plan.arguments.keys).sorted() where info.arguments[key] != plan.arguments[key] {
            differences.append(Difference(found: describe(key, info.arguments[key]), wanted: describe(key, plan.arguments[key])))
        }
        return differences
    }

    /// "durable false, x-expires 60000 where Warren makes durable true, no x-expires"
    static func describe(_ differences: [Difference]) -> String {
        "\(differences.map(\.found).joined(separator: ", ")) where Warren makes \(differences.map(\.wanted).joined(separator: ", "))"
    }

    /// Numbers compare by value (the broker may answer 60000 where Warren sent 60000.0).
    private static func same(_ a: JSONValue?, _ b: JSONValue?) -> Bool {
        if let x = a?.intValue, let y = b?.intValue { return x == y }
        return a == b
    }

    /// An argument as the detail names it. The value is the tenant's own (they declared it),
    /// cut short so that a long one does not swamp the answer.
    private static func describe(_ key: String, _ value: JSONValue?) -> String {
        guard let value else { return "no \(key)" }
        let text: String = switch value {
        case .string(let string): string
        case .int(let int): String(int)
        case .number(let number): String(number)
        case .bool(let bool): String(bool)
        case .null: "null"
        case .array, .object: "(a table)"
        }
        return "\(key) \(text.count > 64 ? String(text.prefix(64)) + "..." : text)"
    }
}
