import EnvironmentModel
import HTTPServer
import Provisioning
import WireFormat

/// The /v1/environments handlers. Each validates fully before it calls the provisioner, so a
/// 4xx never changes anything on the broker.
struct EnvironmentHandlers: Sendable {
    let provisioner: Provisioner
    let endpoint: AMQPEndpoint
    let blueprints: Blueprints

    /// POST: 201 with everything a client needs to connect, or 200 when the environment
    /// exists with the same spec. With `Prefer: respond-async`, 202 as soon as the vhost and
    /// the record exist: the body is the same (its users will have these passwords), with
    /// `status: creating`; the environment's GET says when it is `ready` (or `failed`, why).
    func create(_ context: RequestContext) async throws -> HTTPResponse {
        try requireJSON(context.request)
        let secrets = try SecretRequest.parse(query: context.request.query)
        let request = try CreateEnvironmentRequest.decode(
            context.request.body, blueprints: blueprints, ceilings: provisioner.ceilings, tiers: provisioner.tiers)
        let async = Prefer.respondAsync(context.request)
        let provisioner = provisioner.logging(to: context.logger)
        try await request.check(madeBy: provisioner)
        let result = try await provisioner
            .create(team: context.team, spec: request.spec, roles: [.full] + request.extraRoles, tier: request.tier, finishInBackground: async)
        let release = try await ProtectionNotes.release(of: [result.environment], provisioner)
        var body = CreatedEnvironmentBody(
            result, endpoint: endpoint, ceilings: provisioner.ceilings(for: result.environment), release: release, secrets: secrets)
        StreamConnections.describe(
            result.environment, port: await StreamConnections.port(for: result.environment, provisioner), endpoint: endpoint,
            credentials: result.credentials.first { $0.role == .full } ?? result.credentials.first,
            connection: &body.connection, summary: &body.summary)
        // The body holds a password: tell every cache to keep it nowhere.
        var headers = [("Location", "/v1/environments/\(PercentEncoding.encode(body.summary.id))"), ("Cache-Control", "no-store")]
        if async { headers.append(Prefer.applied) }
        return JSON.response(result.pending ? 202 : result.created ? 201 : 200, body, headers: headers)
    }

    func list(_ context: RequestContext) async throws -> HTTPResponse {
        let provisioner = provisioner.logging(to: context.logger)
        try provisioner.takeRead(team: context.team)
        let environments = try await provisioner.list(team: context.team)
        let release = try await ProtectionNotes.release(of: environments, provisioner)
        return JSON.response(200, EnvironmentListBody(items: environments.map {
            EnvironmentSummaryBody($0, ceilings: provisioner.ceilings(for: $0), release: release)
        }))
    }

    func get(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environmentID(context)
        let provisioner = provisioner.logging(to: context.logger)
        try provisioner.takeRead(team: context.team)
        guard let health = try await provisioner.inspect(team: context.team, name: id) else {
            throw Problem.notFound("no environment \(id)")
        }
        return JSON.response(200, try await detail(health, provisioner))
    }

    /// PATCH: adds queues and bindings, or sets limits, in place, and protects the environment
    /// from deletion or lifts that protection. A change to a queue that exists is refused
    /// (409): the broker cannot apply it without deleting the queue.
    ///
    /// The topology first, then the protection: a topology change refused (4xx) leaves the
    /// protection as it was, so the refusal changes nothing; a protection that fails after the
    /// topology changed leaves the environment protected as before, which is what a caller
    /// told of a failure may believe.
    func update(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environmentID(context)
        try requireJSON(context.request)
        let request = try EnvironmentChangeRequest.decode(context.request.body)
        let provisioner = provisioner.logging(to: context.logger)
        var health: EnvironmentHealth?
        if request.changesTopology {
            guard let current = try await provisioner.inspect(team: context.team, name: id) else {
                throw Problem.notFound("no environment \(id)")
            }
            // Compared with the spec as the broker's release made it (a queue with priorities is
            // classic before RabbitMQ 4, say).
            let addition = try await provisioner.explicit(request.addition)
            let merged = try Provisioner.merge(addition, into: current.environment.spec)
            var invalid = merged.validate()
            if invalid.isEmpty { invalid = provisioner.ceilings(for: current.environment).problems(in: merged, limitsAsked: addition.limits != nil) }
            guard invalid.isEmpty else {
                throw Problem.invalidFields(invalid.map { Problem.FieldError(field: $0.field, reason: $0.reason) })
            }
            health = try await provisioner.update(team: context.team, name: id, adding: addition)
            guard health != nil else { throw Problem.notFound("no environment \(id)") }
        }
        if let protected = request.protected {
            health = try await provisioner.setProtection(team: context.team, name: id, protected: protected)
        }
        guard let health else { throw Problem.notFound("no environment \(id)") }
        return JSON.response(200, try await detail(health, provisioner))
    }

    /// The answer that describes one environment, with what the broker's release says of its
    /// protection (see `ProtectionNotes`).
    func detail(_ health: EnvironmentHealth, _ provisioner: Provisioner) async throws -> EnvironmentDetailBody {
        let release = try await ProtectionNotes.release(of: [health.environment], provisioner)
        var body = EnvironmentDetailBody(health, endpoint: endpoint, ceilings: provisioner.ceilings(for: health.environment), release: release)
        StreamConnections.describe(
            health.environment, port: await StreamConnections.port(for: health.environment, provisioner), endpoint: endpoint,
            credentials: nil, connection: &body.connection, summary: &body.summary)
        return body
    }

    /// Restores what drifted away; answers like GET, plus credentials when it had to make a
    /// new user because none was left.
    func reconcile(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environmentID(context)
        let provisioner = provisioner.logging(to: context.logger)
        guard let result = try await provisioner.reconcile(team: context.team, name: id) else {
            throw Problem.notFound("no environment \(id)")
        }
        var body = try await detail(result.health, provisioner)
        var headers: [(String, String)] = []
        if let credentials = result.credentials {
            body.credentials = CredentialsBody(credentials)
            let stream = body.connection.stream.map { endpoint.stream(port: $0.port, vhost: body.summary.vhost, credentials: credentials) }
            body.connection = endpoint.connection(vhost: body.summary.vhost, credentials: credentials)
            body.connection.stream = stream
            headers.append(("Cache-Control", "no-store"))
        }
        return JSON.response(200, body, headers: headers)
    }

    /// DELETE: refuses (409) when queues hold messages, unless `?force=true`. With `Prefer:
    /// respond-async`, 202 once the environment is marked `deleting`; its GET is 404 when it is gone.
    func delete(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environmentID(context)
        let force = try Query.flag("force", in: context.request.query)
        let async = Prefer.respondAsync(context.request)
        guard try await provisioner.logging(to: context.logger)
            .delete(team: context.team, name: id, force: force, finishInBackground: async)
        else {
            throw Problem.notFound("no environment \(id)")
        }
        guard async else { return HTTPResponse(status: 204) }
        return HTTPResponse(
            status: 202, headers: HTTPHeaders([("Location", "/v1/environments/\(PercentEncoding.encode(id))"), Prefer.applied]))
    }

    /// An id that could not name an environment is simply not found: it is never sent on to
    /// the broker.
    func environmentID(_ context: RequestContext) throws -> String {
        guard let id = context.parameters["id"], NameRules.checkEnvironmentName(id) == nil else {
            throw Problem.notFound("no environment \(context.parameters["id"] ?? "")")
        }
        return id
    }

    func requireJSON(_ request: HTTPRequest) throws {
        let contentType = request.headers["Content-Type"]
        let mediaType = contentType?.split(separator: ";").first?.lowercased().filter { $0 != " " } ?? ""
        guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
            throw Problem.unsupportedMediaType(contentType)
        }
    }
}

/// The `Prefer` request header (RFC 7240): Warren honours `respond-async` on POST and DELETE of
/// an environment, and says so in `Preference-Applied`.
enum Prefer {
    static let applied = ("Preference-Applied", "respond-async")

    /// Whether any `Prefer` header lists the `respond-async` preference (names are
    /// case-insensitive; parameters after `;` or a value after `=` are ignored).
    static func respondAsync(_ request: HTTPRequest) -> Bool {
        request.headers.values("Prefer").contains { header in
            header.split(separator: ",").contains { preference in
                let name = preference.split(separator: ";").first?.split(separator: "=").first ?? ""
                return name.filter { $0 != " " && $0 != "\t" }.lowercased() == "respond-async"
            }
        }
    }
}

/// Query parameters Warren reads: only flags, so far.
enum Query {
    /// `name=true|false` (absent: false); any other value is a 400.
    static func flag(_ name: String, in query: String?) throws(Problem) -> Bool {
        var value = false
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.first.map(String.init) == name else { continue }
            switch parts.count == 2 ? String(parts[1]) : "" {
            case "true", "1": value = true
            case "false", "0": value = false
            default: throw Problem.invalidField(name, "must be true or false")
            }
        }
        return value
    }
}
