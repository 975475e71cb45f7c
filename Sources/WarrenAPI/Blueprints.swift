import EnvironmentModel
import FoundationEssentials
import WireFormat

/// Named topologies that operators define in WARREN_BLUEPRINTS_FILE, so a team can ask for
/// `{"name": "...", "blueprint": "inference-jobs"}`. The file is a JSON object of blueprints,
/// each written like a create body's topology fields (`exchange`, `queues`, `bindings`,
/// `limits`) plus a `description`, and optionally `ceilings`: a tier, whose environments get
/// these ceilings instead of the global ones (`connections`, `queues`, `environment_bytes`,
/// `queue_length`, `user_connections`, `user_channels`, `users`; those not given stay global).
/// Checked in full at start-up.
public struct Blueprints: Sendable {
    public struct Blueprint: Sendable {
        public var name: String
        public var description: String
        var exchangeName: String?
        var exchangeType: EnvironmentSpec.ExchangeType
        var queues: [EnvironmentSpec.Queue]
        var bindings: [EnvironmentSpec.Binding]
        var limits: EnvironmentSpec.Limits
        /// The tier's ceilings that differ from the global ones, by `Ceilings.Setting` name.
        var ceilingOverrides: [String: Int] = [:]

        /// This blueprint's tier over the global ceilings; nil when it has no ceilings of its own.
        public func ceilings(over base: Ceilings) -> Ceilings? {
            guard !ceilingOverrides.isEmpty else { return nil }
            var ceilings = base
            for setting in Ceilings.settings {
                if let value = ceilingOverrides[setting.name] { ceilings[keyPath: setting.key] = value }
            }
            return ceilings
        }

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
        var overrides: [String: Int] = [:]
        if let object = fields.object("ceilings") {
            var ceilings = JSONFields(object, path: "ceilings.")
            let settings = Ceilings.settings.filter { !$0.perTeam }
            for setting in settings {
                guard let value = ceilings.integer(setting.name) else { continue }
                guard setting.range.contains(value) else {
                    errors.append(.init(field: "ceilings.\(setting.name)", reason: "must be from \(setting.range.lowerBound) to \(setting.range.upperBound)"))
                    continue
                }
                overrides[setting.name] = value
            }
            ceilings.rejectUnknown(allowed: Set(settings.map(\.name)))
            errors += ceilings.errors
        }
        fields.rejectUnknown(allowed: ["description", "exchange", "queues", "bindings", "limits", "ceilings"])
        errors += fields.errors
        self.init(
            name: name, description: description, exchangeName: exchangeName, exchangeType: exchangeType,
            queues: queues, bindings: bindings, limits: limits, ceilingOverrides: overrides)
        // The same checks a request gets, on a stand-in environment name.
        errors += spec(named: "blueprint-check").validate().map { Problem.FieldError(field: $0.field, reason: $0.reason) }
        if let first = errors.first {
            throw Blueprints.LoadError(description: "\(source): blueprint \(name): \(first.field) \(first.reason)")
        }
    }
}
