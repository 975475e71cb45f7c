import EnvironmentModel
import WireFormat

/// A POST /v1/environments body, decoded into a valid spec (or a 400 naming every offending
/// field). Decoded by hand over a strict JSON tree rather than with Codable, so unknown fields,
/// nulls and wrong types each get their own precise message.
///
/// Three forms: the single-queue form (`queue`, `routing_key`), the full form (`queues`,
/// `bindings`, `limits`), and a `blueprint` named by the operators.
struct CreateEnvironmentRequest {
    var spec: EnvironmentSpec
    /// Credentials to issue besides the full-access set: the `roles` asked for, and one set per agent.
    var extraRoles: [Role]
    /// Whether the body was written in the single-queue form (fields are named as it names them).
    var singleQueueForm = false
    /// The blueprint whose ceilings (a tier) the environment gets, when it has its own.
    var tier: String?

    static let keys: Set<String> = [
        "name", "blueprint", "exchange", "queue", "routing_key", "queues", "bindings", "limits", "roles", "protected", "agents", "super_streams",
    ]
    static let topologyKeys = ["exchange", "queue", "routing_key", "queues", "bindings", "limits", "super_streams"]

    /// `ceilings` are the global ones; a blueprint with a tier in `tiers` is checked against its own.
    static func decode(
        _ body: [UInt8], blueprints: Blueprints = Blueprints(), ceilings global: Ceilings = Ceilings(), tiers: [String: Ceilings] = [:]
    ) throws(Problem) -> CreateEnvironmentRequest {
        let object = try JSONBody.object(body)
        var fields = JSONFields(object)
        let name = fields.string("name", required: true)
        let blueprintName = fields.string("blueprint")
        let protected = fields.bool("protected") ?? false
        var roles: [Role] = []
        if let items = fields.array("roles") {
            for (index, item) in items.enumerated() {
                guard case .string(let raw) = item, let role = Role(builtIn: raw), role != .full else {
                    fields.fail("roles[\(index)]", "must be producer or consumer")
                    continue
                }
                if !roles.contains(role) { roles.append(role) }
            }
        }
        let agentItems = fields.array("agents")
        fields.rejectUnknown(allowed: keys)
        var errors = fields.errors
        let envName = name ?? ""

        var singleQueueForm = true
        var spec: EnvironmentSpec
        if let blueprintName {
            let mixed = topologyKeys.filter { object[$0] != nil }
            if !mixed.isEmpty {
                errors.append(.init(field: "blueprint", reason: "cannot be combined with \(mixed.joined(separator: ", "))"))
            }
            guard let blueprint = blueprints[blueprintName] else {
                errors.append(.init(field: "blueprint", reason: "no such blueprint; GET /v1/blueprints lists them"))
                throw Problem.invalidFields(errors)
            }
            spec = blueprint.spec(named: envName)
            singleQueueForm = false
        } else {
            (spec, singleQueueForm) = topology(object, name: envName, errors: &errors)
            if let items = object["super_streams"] {
                spec.superStreams = TopologyFields.superStreams(items, errors: &errors)
            }
        }

        // Not topology: they go with every form, a blueprint's too.
        spec.protected = protected
        if let agentItems { spec.agents = AgentFields.agents(agentItems, errors: &errors) }

        // Check the values too, even when some fields already failed, so one answer names
        // every problem; a field with a type error is not reported twice.
        let typed = Set(errors.map(\.field))
        let tier = blueprintName.flatMap { tiers[$0] == nil ? nil : $0 }
        let ceilings = tier.flatMap { tiers[$0] } ?? global
        let users = 1 + roles.count + spec.agents.count
        if users > ceilings.users {
            errors.append(.init(
                field: spec.agents.isEmpty ? "roles" : "agents",
                reason: "would make \(users) users (the full set, \(roles.count) roles, \(spec.agents.count) agents), more than the operator's ceiling of \(ceilings.users) per environment"))
        }
        // Ceilings only once the values are valid at all (one problem per field is enough).
        let invalid = spec.validate()
        for problem in invalid + (invalid.isEmpty ? ceilings.problems(in: spec) : []) {
            let field = singleQueueForm ? singleQueueName(problem.field) : problem.field
            guard !typed.contains(field) else { continue }
            // A default derived from a bad name is not a field of its own the caller sent.
            // Agents and `super_streams` go with either form and are always named as sent: their
            // problems are never those of a default.
            if field == "name" || field.hasPrefix("agents") || field.hasPrefix("super_streams") || wasSent(field, object) || !singleQueueForm {
                errors.append(.init(field: field, reason: problem.reason))
            }
        }
        guard errors.isEmpty else { throw Problem.invalidFields(errors) }
        return CreateEnvironmentRequest(
            spec: spec, extraRoles: roles + spec.agents.map { Role.agent($0.name) }, singleQueueForm: singleQueueForm, tier: tier)
    }

    /// Checks the queues as this broker's release makes them (`Provisioner.explicit`): before
    /// RabbitMQ 4.0 a queue with `max_priority` is made classic, and a classic queue takes no
    /// setting that needs a quorum queue (`delivery_limit`, `consumer_timeout_ms`). A rule of
    /// the broker's release, which no request schema can state; left unchecked, the create
    /// made an environment whose record then failed its own validation.
    func check(asMade queues: [EnvironmentSpec.Queue]) throws(Problem) {
        var errors: [Problem.FieldError] = []
        for (index, (asked, made)) in zip(spec.queues, queues).enumerated() where asked.type == .quorum && made.type != .quorum {
            let field = singleQueueForm && index == 0 ? "queue" : "queues[\(index)]"
            for problem in made.problems(field: field) where problem.reason == QueueSetting.needsQuorum {
                errors.append(.init(field: problem.field, reason: "\(QueueSetting.needsQuorum); before RabbitMQ 4.0 a queue with max_priority is made classic"))
            }
        }
        guard errors.isEmpty else { throw Problem.invalidFields(errors) }
    }

    /// The topology fields of a body: the single-queue form unless `queues` or `bindings` is given.
    private static func topology(
        _ object: [String: JSONValue], name: String, errors: inout [Problem.FieldError]
    ) -> (EnvironmentSpec, singleQueueForm: Bool) {
        var fields = JSONFields(object)
        defer { errors += fields.errors }
        let exchange = fields.object("exchange").map { TopologyFields.exchange($0, defaultName: name, errors: &errors) }
            ?? EnvironmentSpec.Exchange(name: name, type: .direct)
        let limits = fields.object("limits").map { TopologyFields.limits($0, errors: &errors) } ?? EnvironmentSpec.Limits()

        if object["queues"] != nil || object["bindings"] != nil {
            for key in ["queue", "routing_key"] where object[key] != nil {
                fields.fail(key, "cannot be combined with queues or bindings")
            }
            let queues = fields.array("queues").map { TopologyFields.queues($0, errors: &errors) } ?? [EnvironmentSpec.Queue(name: name)]
            let bindings = fields.array("bindings").map { TopologyFields.bindings($0, errors: &errors) }
                ?? TopologyFields.defaultBindings(for: queues)
            return (EnvironmentSpec(name: name, exchange: exchange, queues: queues, bindings: bindings, limits: limits), false)
        }

        let queue = fields.object("queue").map { TopologyFields.queue($0, path: "queue.", defaultName: name, errors: &errors) }
        let routingKey = fields.string("routing_key")
        var spec = EnvironmentSpec(name: name, exchange: exchange, queue: queue, routingKey: routingKey)
        spec.limits = limits
        return (spec, true)
    }

    /// "queues[0].type" -> "queue.type" and "bindings[0].routing_key" -> "routing_key", for
    /// bodies written in the single-queue form.
    static func singleQueueName(_ field: String) -> String {
        if field.hasPrefix("queues[0].") { return "queue." + field.dropFirst("queues[0].".count) }
        if field.hasPrefix("bindings[0].") { return String(field.dropFirst("bindings[0].".count)) }
        return field
    }

    private static func wasSent(_ path: String, _ object: [String: JSONValue]) -> Bool {
        let parts = path.split(separator: ".").map(String.init)
        guard parts.count == 2 else { return object[path] != nil }
        guard case .object(let inner) = object[parts[0]] else { return false }
        return inner[parts[1]] != nil
    }
}

/// The one way request bodies become JSON objects.
enum JSONBody {
    static func object(_ body: [UInt8]) throws(Problem) -> [String: JSONValue] {
        let tree: JSONValue
        do {
            tree = try StrictJSON.parse(body)
        } catch {
            throw Problem.malformedJSON("the body is not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard case .object(let object) = tree else {
            throw Problem.malformedJSON("the body must be a JSON object")
        }
        return object
    }
}

extension ProvisioningError {
    /// "queues[0].consumer_timeout_ms needs RabbitMQ 3.12 or later; ...": each field of a
    /// refusal with its reason, as a 400 names them.
    var fieldProblems: [String] {
        fields.map { "\($0) \(fieldReason ?? detail)" }
    }
}
