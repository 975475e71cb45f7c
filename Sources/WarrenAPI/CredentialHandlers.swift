import EnvironmentModel
import HTTPServer
import Provisioning

/// Rotation: POST .../credentials issues a new set while the old ones keep working; DELETE
/// .../credentials/{username} revokes one now; `revoke_others_after_seconds` schedules the
/// revocation of the role's other users.
struct CredentialHandlers: Sendable {
    let provisioner: Provisioner
    let endpoint: AMQPEndpoint
    let environments: EnvironmentHandlers

    func issue(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environments.environmentID(context)
        var role = Role.full
        var revokeAfter: Duration?
        if !context.request.body.isEmpty {
            try environments.requireJSON(context.request)
            var fields = JSONFields(try JSONBody.object(context.request.body))
            role = fields.choice("role", Role.self) ?? .full
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
            revocations: result.revocations)
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

/// A PATCH body: queues and bindings to add, limits to set.
enum TopologyAdditionRequest {
    static func decode(_ body: [UInt8]) throws(Problem) -> TopologyAddition {
        let object = try JSONBody.object(body)
        var errors: [Problem.FieldError] = []
        var fields = JSONFields(object)
        let queues = fields.array("queues").map { TopologyFields.queues($0, errors: &errors) } ?? []
        let bindings = fields.array("bindings").map { TopologyFields.bindings($0, errors: &errors) } ?? []
        let limits = fields.object("limits").map { TopologyFields.limits($0, errors: &errors) }
        fields.rejectUnknown(allowed: ["queues", "bindings", "limits"])
        errors += fields.errors
        if object.isEmpty { errors.append(.init(field: "queues", reason: "give queues, bindings or limits to add")) }
        guard errors.isEmpty else { throw Problem.invalidFields(errors) }
        return TopologyAddition(queues: queues, bindings: bindings, limits: limits)
    }
}
