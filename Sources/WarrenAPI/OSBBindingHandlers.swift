import EnvironmentModel
import HTTPServer
import Provisioning
import WireFormat

/// Service bindings: each is a user of the instance's environment whose name and password are
/// derived from the binding id (see `BindingIdentity`), so Warren stores nothing per binding.
/// Parameters: `role` (full, producer or consumer; full by default). Rotation (OSB 2.17): a
/// binding with `predecessor_binding_id` is a new user with the predecessor's role, and the
/// predecessor keeps working until the platform unbinds it.
struct OSBBindingHandlers: Sendable {
    let provisioner: Provisioner
    let endpoint: AMQPEndpoint
    /// Finds the instance; holds the server secrets binding passwords are derived with
    /// (WARREN_OSB_SECRET_FILE, and the previous one during a rotation).
    let instances: OSBInstanceLookup

    func bind(_ context: OSBContext) async throws -> HTTPResponse {
        let id = try OSBInstanceHandlers.instanceID(context)
        let bindingID = try Self.bindingID(context)
        _ = try OSBQuery.acceptsIncomplete(context.request.query)
        let request = try OSBBindRequest.decode(context.request, bindingID: bindingID)
        var role = request.role

        let provisioner = provisioner.logging(to: context.logger)
        let environment = try await readyInstance(provisioner, context, instanceID: id)
        if let predecessor = request.predecessor {
            let username = BindingIdentity.username(
                vhost: environment.environment.vhost, incarnation: environment.incarnation, bindingID: predecessor)
            guard let predecessorRole = try await provisioner.bindingRole(environment, username: username) else {
                throw OSBError.unprocessable("predecessor binding \(predecessor) does not exist in instance \(id)")
            }
            if let role, role != predecessorRole {
                throw OSBError.badRequest("parameters.role must be the predecessor's (\(predecessorRole.name)): a rotation keeps the binding's parameters")
            }
            role = predecessorRole
        }
        let credentials = BindingIdentity.credentials(secret: instances.secrets.current, environment: environment, bindingID: bindingID, role: role ?? .full)
        if let planID = request.planID, planID != environment.platform?.planID {
            // Nothing is stored per binding: its plan is its instance's. The same binding id
            // asked for again under another plan is a conflict, a new one a bad request.
            if try await provisioner.bindingRole(environment, username: credentials.username) != nil {
                throw OSBError.conflict("binding \(bindingID) exists with another plan (its instance's)")
            }
            throw OSBError.badRequest("plan_id is not the plan of this instance")
        }
        switch try await provisioner.bind(environment, credentials: credentials) {
        case .created:
            var body = BindingBody(credentials: credentials, environment: environment, endpoint: endpoint)
            body.addSecret(request.secret, credentials: credentials, environment: environment, bindingID: bindingID, endpoint: endpoint)
            return JSON.response(201, body, headers: [("Cache-Control", "no-store")])
        case .existing:
            let issued = try await asMade(provisioner, context, environment, bindingID: bindingID, role: credentials.role)
            var body = BindingBody(credentials: issued, environment: environment, endpoint: endpoint)
            body.addSecret(request.secret, credentials: issued, environment: environment, bindingID: bindingID, endpoint: endpoint)
            return JSON.response(200, body, headers: [("Cache-Control", "no-store")])
        case .otherRole(let existing):
            throw OSBError.conflict("binding \(bindingID) exists with role \(existing.name)")
        }
    }

    func fetch(_ context: OSBContext) async throws -> HTTPResponse {
        let id = try OSBInstanceHandlers.instanceID(context)
        let bindingID = try Self.bindingID(context)
        let provisioner = provisioner.logging(to: context.logger)
        guard case .mine(let environment) = try await instances.find(provisioner, context, instanceID: id),
              environment.state == .ready
        else { throw OSBError.notFound("no binding \(bindingID)") }
        let username = BindingIdentity.username(vhost: environment.environment.vhost, incarnation: environment.incarnation, bindingID: bindingID)
        guard let role = try await provisioner.bindingRole(environment, username: username) else {
            throw OSBError.notFound("no binding \(bindingID)")
        }
        let credentials = try await asMade(provisioner, context, environment, bindingID: bindingID, role: role)
        var body = BindingBody(credentials: credentials, environment: environment, endpoint: endpoint)
        body.parameters = ["role": role.name]
        return JSON.response(200, body, headers: [("Cache-Control", "no-store")])
    }

    /// DELETE: the binding's user goes now (its connections with it); 410 when there is none.
    func unbind(_ context: OSBContext) async throws -> HTTPResponse {
        let id = try OSBInstanceHandlers.instanceID(context)
        let bindingID = try Self.bindingID(context)
        try OSBQuery.requireServiceAndPlan(context.request.query)
        _ = try OSBQuery.acceptsIncomplete(context.request.query)
        let provisioner = provisioner.logging(to: context.logger)
        guard case .mine(let environment) = try await instances.find(provisioner, context, instanceID: id) else {
            return OSBResponse.empty(410)
        }
        let username = BindingIdentity.username(vhost: environment.environment.vhost, incarnation: environment.incarnation, bindingID: bindingID)
        return try await provisioner.unbind(environment, username: username) ? OSBResponse.empty(200) : OSBResponse.empty(410)
    }

    /// Bindings are made synchronously: one that exists has succeeded. Warren never answers
    /// 202 for a binding, so there is no asynchronous unbind whose end a 410 would report: a
    /// binding that is not there (nor its instance) is 404.
    func lastOperation(_ context: OSBContext) async throws -> HTTPResponse {
        let id = try OSBInstanceHandlers.instanceID(context)
        let bindingID = try Self.bindingID(context)
        try OSBQuery.checkHints(context.request.query)
        let provisioner = provisioner.logging(to: context.logger)
        guard case .mine(let environment) = try await instances.find(provisioner, context, instanceID: id) else {
            throw OSBError.notFound("no binding \(bindingID)")
        }
        let username = BindingIdentity.username(vhost: environment.environment.vhost, incarnation: environment.incarnation, bindingID: bindingID)
        guard try await provisioner.bindingRole(environment, username: username) != nil else { throw OSBError.notFound("no binding \(bindingID)") }
        return OSBResponse.lastOperation("succeeded", "bound")
    }

    /// The credentials of a binding that exists, as the broker holds them: its password was
    /// derived with the current secret, or (made before a rotation) with the previous one. A
    /// password made with neither is an error, never a password that does not log in.
    private func asMade(_ provisioner: Provisioner, _ context: OSBContext, _ environment: PlatformEnvironment, bindingID: String, role: Role) async throws -> IssuedCredentials {
        let username = BindingIdentity.username(vhost: environment.environment.vhost, incarnation: environment.incarnation, bindingID: bindingID)
        guard let stored = try await provisioner.bindingPassword(environment, username: username) else {
            throw OSBError.concurrency("binding \(bindingID) was unbound meanwhile")
        }
        guard let issued = instances.secrets.bindingCredentials(environment: environment, bindingID: bindingID, role: role, stored: stored) else {
            context.logger.error("binding password made with another secret; not answered", metadata: [
                "vhost": "\(environment.environment.vhost)", "user": "\(username)",
            ])
            throw OSBError.unverifiable(
                "binding \(bindingID)'s password was made with another secret than this Warren's WARREN_OSB_SECRET_FILE "
                + "(or WARREN_OSB_PREVIOUS_SECRET_FILE); rotate the binding (a new binding with predecessor_binding_id) or unbind it")
        }
        return issued
    }

    static func bindingID(_ context: OSBContext) throws(OSBError) -> String {
        try OSBNaming.checkID(context.parameters["binding_id"], what: "binding id")
    }

    /// The instance, ready to be bound to.
    func readyInstance(_ provisioner: Provisioner, _ context: OSBContext, instanceID: String) async throws -> PlatformEnvironment {
        guard case .mine(let environment) = try await instances.find(provisioner, context, instanceID: instanceID) else {
            throw OSBError.notFound("no instance \(instanceID)")
        }
        switch environment.state {
        case .ready: return environment
        case .creating: throw OSBError.concurrency("instance \(instanceID) is still being provisioned")
        case .deleting: throw OSBError.concurrency("instance \(instanceID) is being deprovisioned")
        case .failed: throw OSBError.unprocessable("instance \(instanceID) failed to provision")
        }
    }

    /// `credentials` as applications read them, plus where their messages go.
    struct BindingBody: Encodable {
        struct Credentials: Encodable {
            var uri: String
            var host: String
            var port: Int
            var vhost: String
            var username: String
            var password: String
            var role: String
            var exchange: String
            var queues: [String]
            var routingKey: String
            /// The same credentials as one Kubernetes Secret, when the bind's parameters asked
            /// (`secret: kubernetes`). Inside `credentials`, which OSB leaves free-form, rather
            /// than beside it, where v2.17 defines the fields a platform reads.
            var kubernetesSecrets: [KubernetesSecret]?
        }

        var credentials: Credentials
        var parameters: [String: String]?

        init(credentials issued: IssuedCredentials, environment: PlatformEnvironment, endpoint: AMQPEndpoint) {
            let spec = environment.environment.spec
            let connection = endpoint.connection(vhost: environment.environment.vhost, credentials: issued)
            credentials = Credentials(
                uri: connection.uri, host: connection.host, port: connection.port, vhost: connection.vhost,
                username: issued.username, password: issued.password, role: issued.role.name,
                exchange: spec.exchange.name, queues: spec.queues.map(\.name), routingKey: spec.routingKey)
        }

        /// The Secret is named after the environment and the binding: bindings of one role are
        /// distinct sets, each a Secret of its own.
        mutating func addSecret(
            _ request: SecretRequest?, credentials issued: IssuedCredentials, environment: PlatformEnvironment, bindingID: String,
            endpoint: AMQPEndpoint
        ) {
            guard let request else { return }
            credentials.kubernetesSecrets = request.render([
                KubernetesSecret.Source(
                    environment: environment.environment.name, vhost: environment.environment.vhost, credentials: issued,
                    endpoint: endpoint, setName: bindingID),
            ])
        }
    }
}
