import FoundationEssentials
import Provisioning
import WireFormat

/// Named topologies that operators define in WARREN_BLUEPRINTS_FILE, so a team can ask for
/// `{"name": "...", "blueprint": "inference-jobs"}`. The file is a JSON object of blueprints,
/// each written like a create body's topology fields (`exchange`, `queues`, `bindings`,
/// `limits`) plus a `description`. Checked in full at start-up.
public struct Blueprints: Sendable {
    public struct Blueprint: Sendable {
        public var name: String
        public var description: String
        var exchangeName: String?
        var exchangeType: EnvironmentSpec.ExchangeType
        var queues: [EnvironmentSpec.Queue]
        var bindings: [EnvironmentSpec.Binding]
        var limits: EnvironmentSpec.Limits

        /// The topology for an environment called `name` (the exchange is named after it
        /// unless the blueprint names it).
        public func spec(named name: String) -> EnvironmentSpec {
            EnvironmentSpec(
                name: name, exchange: .init(name: exchangeName ?? name, type: exchangeType),
                queues: queues, bindings: bindings, limits: limits)
        }
    }

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    private let byName: [String: Blueprint]

    public init() { byName = [:] }

    public init(path: String) throws {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else {
            throw LoadError(description: "cannot read \(path)")
        }
        try self.init(json: Array(data), source: path)
    }

    init(json: [UInt8], source: String) throws {
        let object: [String: JSONValue]
        do {
            object = try JSONBody.object(json)
        } catch {
            throw LoadError(description: "\(source): \(error.detail)")
        }
        var byName: [String: Blueprint] = [:]
        for (name, value) in object {
            guard NameRules.checkEnvironmentName(name) == nil else {
                throw LoadError(description: "\(source): blueprint name \"\(name)\" must be 1-63 of a-z, 0-9 and '-'")
            }
            guard case .object(let body) = value else { throw LoadError(description: "\(source): \(name) must be an object") }
            byName[name] = try Blueprint(name: name, body: body, source: source)
        }
        self.byName = byName
    }

    public subscript(name: String) -> Blueprint? { byName[name] }

    public var all: [Blueprint] { byName.values.sorted { $0.name < $1.name } }
}

extension Blueprints.Blueprint {
    init(name: String, body: [String: JSONValue], source: String) throws {
        var errors: [Problem.FieldError] = []
        var fields = JSONFields(body)
        let description = fields.string("description") ?? ""
        var exchangeName: String?
        var exchangeType = EnvironmentSpec.ExchangeType.direct
        if let object = fields.object("exchange") {
            var exchange = JSONFields(object, path: "exchange.")
            exchangeName = exchange.string("name")
            exchangeType = exchange.choice("type", EnvironmentSpec.ExchangeType.self) ?? .direct
            exchange.rejectUnknown(allowed: ["name", "type"])
            errors += exchange.errors
        }
        let queues = fields.array("queues").map { TopologyFields.queues($0, errors: &errors) } ?? []
        let bindings = fields.array("bindings").map { TopologyFields.bindings($0, errors: &errors) }
            ?? TopologyFields.defaultBindings(for: queues)
        let limits = fields.object("limits").map { TopologyFields.limits($0, errors: &errors) } ?? EnvironmentSpec.Limits()
        fields.rejectUnknown(allowed: ["description", "exchange", "queues", "bindings", "limits"])
        errors += fields.errors
        self.init(
            name: name, description: description, exchangeName: exchangeName, exchangeType: exchangeType,
            queues: queues, bindings: bindings, limits: limits)
        // The same checks a request gets, on a stand-in environment name.
        errors += spec(named: "blueprint-check").validate().map { Problem.FieldError(field: $0.field, reason: $0.reason) }
        if let first = errors.first {
            throw Blueprints.LoadError(description: "\(source): blueprint \(name): \(first.field) \(first.reason)")
        }
    }
}
