import EnvironmentModel
import HTTPServer
import Provisioning
import WireFormat

/// Rotation: POST .../credentials issues a new set while the old ones keep working; DELETE
/// .../credentials/{username} revokes one now; `revoke_others_after_seconds` schedules the
/// revocation of the role's other users.
struct CredentialHandlers: Sendable {
    let provisioner: Provisioner
    let endpoint: AMQPEndpoint
    let environments: EnvironmentHandlers

    func issue(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environments.environmentID(context)
        let secrets = try SecretRequest.parse(query: context.request.query)
        var role = Role.full
        var revokeAfter: Duration?
        if !context.request.body.isEmpty {
            try environments.requireJSON(context.request)
            var fields = JSONFields(try JSONBody.object(context.request.body))
            if let name = fields.string("role") {
                // Which agents exist is the environment's to say: the provisioner checks it.
                if let builtIn = Role(builtIn: name) {
                    role = builtIn
                } else if EnvironmentSpec.Agent.checkName(name) == nil {
                    role = .agent(name)
                } else {
                    fields.fail("role", "must be full, producer, consumer or the name of one of the environment's agents")
                }
            }
            if let seconds = fields.integer("revoke_others_after_seconds") {
                if (0...604_800).contains(seconds) {
                    revokeAfter = .seconds(seconds)
                } else {
                    fields.fail("revoke_others_after_seconds", "must be from 0 to 604800 (a week)")
                }
            }
            fields.rejectUnknown(allowed: ["role", "revoke_others_after_seconds"])
            guard fields.errors.isEmpty else { throw Problem.invalidFields(fields.errors) }
        }
        guard let result = try await provisioner.logging(to: context.logger)
            .issueCredentials(team: context.team, name: id, role: role, revokeOthersAfter: revokeAfter)
        else { throw Problem.notFound("no environment \(id)") }
        let body = IssuedBody(
            credentials: CredentialsBody(result.credentials),
            connection: endpoint.connection(vhost: result.environment.vhost, credentials: result.credentials),
            revocations: result.revocations,
            kubernetesSecrets: secrets?.render([
                KubernetesSecret.Source(environment: id, vhost: result.environment.vhost, credentials: result.credentials, endpoint: endpoint),
            ]))
        return JSON.response(201, body, headers: [("Cache-Control", "no-store")])
    }

    func revoke(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environments.environmentID(context)
        let username = context.parameters["username"] ?? ""
        switch try await provisioner.logging(to: context.logger).revokeCredentials(team: context.team, name: id, username: username) {
        case nil: throw Problem.notFound("no environment \(id)")
        case false?: throw Problem.notFound("no user \(username) in environment \(id)")
        case true?: return HTTPResponse(status: 204)
        }
    }

    struct IssuedBody: Encodable {
        var credentials: CredentialsBody
        var connection: ConnectionBody
        var revocations: [String: String]
        /// Absent unless `?secret=kubernetes` asked for it.
        var kubernetesSecrets: [KubernetesSecret]?
    }
}

/// GET /v1/blueprints: the topologies operators prepared.
struct BlueprintHandlers: Sendable {
    /// Blueprints are read once at start-up and never change, so neither does the list: it is
    /// encoded once (a JSONEncoder run per request cost three quarters of the route's throughput).
    private let body: [UInt8]

    init(blueprints: Blueprints) {
        body = Self.encode(blueprints)
    }

    func list(_ context: RequestContext) throws -> HTTPResponse {
        HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "application/json")]), body: body)
    }

    private static func encode(_ blueprints: Blueprints) -> [UInt8] {
        struct Item: Encodable {
            var name: String
            var description: String
            var topology: TopologyBody

            func encode(to encoder: any Encoder) throws {
                try topology.encode(to: encoder)
                var container = encoder.container(keyedBy: Keys.self)
                try container.encode(name, forKey: .name)
                try container.encode(description, forKey: .description)
            }

            enum Keys: String, CodingKey { case name, description }
        }
        let items = blueprints.all.map { blueprint in
            Item(name: blueprint.name, description: blueprint.description, topology: TopologyBody(blueprint.spec(named: "{name}")))
        }
        return JSON.encode(["items": items])
    }
}

/// Queues and bindings to add, limits to set: an OSB update's `parameters`, and the topology
/// part of a PATCH body (`EnvironmentChangeRequest`).
enum TopologyAdditionRequest {
    static let keys: Set<String> = ["queues", "bindings", "limits"]

    static func decode(_ body: [UInt8]) throws(Problem) -> TopologyAddition {
        let object = try JSONBody.object(body)
        var errors: [Problem.FieldError] = []
        let addition = decode(object, allowing: keys, errors: &errors)
        guard errors.isEmpty else { throw Problem.invalidFields(errors) }
        return addition
    }

    /// The topology fields of `object`; a key outside `allowed` is an error.
    static func decode(_ object: [String: JSONValue], allowing allowed: Set<String>, errors: inout [Problem.FieldError]) -> TopologyAddition {
        var fields = JSONFields(object)
        let queues = fields.array("queues").map { TopologyFields.queues($0, errors: &errors) } ?? []
        let bindings = fields.array("bindings").map { TopologyFields.bindings($0, errors: &errors) } ?? []
        let limits = fields.object("limits").map { TopologyFields.limits($0, errors: &errors) }
        fields.rejectUnknown(allowed: allowed)
        errors += fields.errors
        return TopologyAddition(queues: queues, bindings: bindings, limits: limits)
    }
}

/// A PATCH body: queues and bindings to add, limits to set, and whether the environment is
/// protected from deletion (`protected`, which an OSB update's parameters do not take: see
/// `OSBProtection`). Any one of them is a change; `{}` is not.
struct EnvironmentChangeRequest {
    var addition: TopologyAddition
    /// Protect (true) or lift the protection (false); nil leaves it as it is.
    var protected: Bool?
    /// Whether the body names any topology field (an empty `queues` too: that PATCH re-ensures
    /// the topology, as it always has), or only `protected`.
    var changesTopology: Bool

    static func decode(_ body: [UInt8]) throws(Problem) -> EnvironmentChangeRequest {
        let object = try JSONBody.object(body)
        var errors: [Problem.FieldError] = []
        let addition = TopologyAdditionRequest.decode(object, allowing: TopologyAdditionRequest.keys.union(["protected"]), errors: &errors)
        var fields = JSONFields(object)
        let protected = fields.bool("protected")
        errors += fields.errors
        if object.isEmpty { errors.append(.init(field: "queues", reason: "give queues, bindings or limits to add, or protected")) }
        guard errors.isEmpty else { throw Problem.invalidFields(errors) }
        return EnvironmentChangeRequest(
            addition: addition, protected: protected, changesTopology: !TopologyAdditionRequest.keys.isDisjoint(with: object.keys))
    }
}

/// Why /v2 takes no `protected`, in provision and update parameters alike: a platform deletes
/// an instance when its user asks it to (`cf delete-service`), and that is the request a
/// deprovision carries; a protection the platform set would make Warren refuse the platform's
/// own users. A team that wants an instance kept protects it through /v1 (a PATCH), and then
/// the platform's deprovision is refused until the team lifts it.
enum OSBProtection {
    static let refusal = "parameters.protected is not taken here: a platform deprovisions an instance when its user asks; the team protects an instance through /v1 (PATCH /v1/environments/{name} with {\"protected\": true})"
}
