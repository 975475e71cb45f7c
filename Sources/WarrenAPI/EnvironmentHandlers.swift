import HTTPServer
import Provisioning
import RabbitManagement

/// The /v1/environments handlers. Each validates fully before it calls the provisioner, so a
/// 4xx never changes anything on the broker.
struct EnvironmentHandlers: Sendable {
    let provisioner: Provisioner
    let endpoint: AMQPEndpoint

    func create(_ context: RequestContext) async throws -> HTTPResponse {
        try requireJSON(context.request)
        let spec = try CreateEnvironmentRequest.decode(context.request.body)
        let result = try await provisioner.logging(to: context.logger).create(team: context.team, spec: spec)
        let body = CreatedEnvironmentBody(result, endpoint: endpoint)
        // The body holds a password: tell every cache to keep it nowhere.
        return JSON.response(result.created ? 201 : 200, body, headers: [
            ("Location", "/v1/environments/\(PathSegment.percentEncode(body.id))"),
            ("Cache-Control", "no-store"),
        ])
    }

    func list(_ context: RequestContext) async throws -> HTTPResponse {
        let environments = try await provisioner.logging(to: context.logger).list(team: context.team)
        return JSON.response(200, EnvironmentListBody(items: environments.map(EnvironmentSummaryBody.init)))
    }

    func get(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environmentID(context)
        guard let health = try await provisioner.logging(to: context.logger).inspect(team: context.team, name: id) else {
            throw Problem.notFound("no environment \(id)")
        }
        return JSON.response(200, EnvironmentDetailBody(health, endpoint: endpoint))
    }

    /// Restores what drifted away; answers like GET, plus credentials when it had to make a
    /// new user because none was left.
    func reconcile(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environmentID(context)
        guard let result = try await provisioner.logging(to: context.logger).reconcile(team: context.team, name: id) else {
            throw Problem.notFound("no environment \(id)")
        }
        var body = EnvironmentDetailBody(result.health, endpoint: endpoint)
        var headers: [(String, String)] = []
        if let credentials = result.credentials {
            body.credentials = CredentialsBody(username: credentials.username, password: credentials.password)
            body.connection = endpoint.connection(vhost: body.vhost, credentials: credentials)
            headers.append(("Cache-Control", "no-store"))
        }
        return JSON.response(200, body, headers: headers)
    }

    func delete(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environmentID(context)
        guard try await provisioner.logging(to: context.logger).delete(team: context.team, name: id) else {
            throw Problem.notFound("no environment \(id)")
        }
        return HTTPResponse(status: 204)
    }

    /// An id that could not name an environment is simply not found: it is never sent on to
    /// the broker.
    private func environmentID(_ context: RequestContext) throws -> String {
        guard let id = context.parameters["id"], NameRules.checkEnvironmentName(id) == nil else {
            throw Problem.notFound("no environment \(context.parameters["id"] ?? "")")
        }
        return id
    }

    private func requireJSON(_ request: HTTPRequest) throws {
        let contentType = request.headers["Content-Type"]
        let mediaType = contentType?.split(separator: ";").first?.lowercased().filter { $0 != " " } ?? ""
        guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
            throw Problem.unsupportedMediaType(contentType)
        }
    }
}
