import EnvironmentModel
import HTTPServer
import Logging
import Provisioning

/// The /v1 API, /healthz and /readyz: the route table of Warren.
public struct WarrenAPI: HTTPResponder {
    private let router: Router
    private let pipeline: RequestPipeline

    /// `metrics` renders the Prometheus text exposition for GET /metrics (no token: it holds
    /// counts and timings, no names of teams' resources beyond route patterns). Access lines go
    /// to `accessLog`, or to `logger` at `info` without one.
    public init(
        provisioner: Provisioner, tokens: TokenStore, endpoint: AMQPEndpoint, logger: Logger,
        blueprints: Blueprints = Blueprints(), metrics: (@Sendable () -> [UInt8])? = nil,
        platforms: PlatformStore? = nil, osbSecret: [UInt8] = [], osbPreviousSecret: [UInt8]? = nil, accessLog: (any AccessLog)? = nil
    ) {
        let pipeline = RequestPipeline(tokens: tokens, logger: logger, accessLog: accessLog ?? LoggerAccessLog(logger: logger))
        let environments = EnvironmentHandlers(provisioner: provisioner, endpoint: endpoint, blueprints: blueprints)
        let credentials = CredentialHandlers(provisioner: provisioner, endpoint: endpoint, environments: environments)
        let scaling = ScalingHandlers(provisioner: provisioner, endpoint: endpoint, environments: environments)
        var router = Router()
        // Routes that wait for nothing are answered on the event loop's thread (`immediate`):
        // no Task and no hop back per request.
        router.add("GET", "/healthz", immediate: pipeline.immediateRoute("/healthz", authenticated: false) { _ in Health.live() })
        router.add("GET", "/readyz", pipeline.route("/readyz", authenticated: false) { _ in await Health.ready(provisioner) })
        if let metrics {
            router.add("GET", "/metrics", pipeline.route("/metrics", authenticated: false) { _ in
                HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]), body: metrics())
            })
        }
        // Each pattern is written once: it is both what the router matches and the route label
        // of metrics and access lines.
        func add(_ method: String, _ pattern: StaticString, _ handler: @escaping RequestPipeline.Handler) {
            router.add(method, pattern.description, pipeline.route(pattern, handler))
        }
        add("POST", "/v1/environments", environments.create)
        add("GET", "/v1/environments", environments.list)
        add("GET", "/v1/environments/{id}", environments.get)
        add("PATCH", "/v1/environments/{id}", environments.update)
        add("DELETE", "/v1/environments/{id}", environments.delete)
        add("POST", "/v1/environments/{id}/reconcile", environments.reconcile)
        add("POST", "/v1/environments/{id}/credentials", credentials.issue)
        add("DELETE", "/v1/environments/{id}/credentials/{username}", credentials.revoke)
        add("GET", "/v1/environments/{id}/queues", scaling.queues)
        add("GET", "/v1/environments/{id}/keda", scaling.keda)
        router.add("GET", "/v1/blueprints", immediate: pipeline.immediateRoute("/v1/blueprints", BlueprintHandlers(blueprints: blueprints).list))
        // Open Service Broker API v2.17 (see OSBInstanceHandlers, OSBBindingHandlers): basic
        // authentication per platform; without a platforms file every /v2 request is a 401.
        let instances = OSBInstanceLookup(secrets: OSBSecrets(current: osbSecret, previous: osbPreviousSecret), platforms: platforms)
        let osb = OSBInstanceHandlers(
            provisioner: provisioner, catalog: OSBCatalog(blueprints: blueprints), blueprints: blueprints, instances: instances)
        let bindings = OSBBindingHandlers(provisioner: provisioner, endpoint: endpoint, instances: instances)
        func add(_ method: String, _ pattern: StaticString, _ handler: @escaping RequestPipeline.OSBHandler) {
            router.add(method, pattern.description, pipeline.osbRoute(pattern, platforms: platforms, handler))
        }
        add("GET", "/v2/catalog", osb.catalogResponse)
        add("PUT", "/v2/service_instances/{instance_id}", osb.provision)
        add("GET", "/v2/service_instances/{instance_id}", osb.fetch)
        add("PATCH", "/v2/service_instances/{instance_id}", osb.update)
        add("DELETE", "/v2/service_instances/{instance_id}", osb.deprovision)
        add("GET", "/v2/service_instances/{instance_id}/last_operation", osb.lastOperation)
        add("PUT", "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", bindings.bind)
        add("GET", "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", bindings.fetch)
        add("DELETE", "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", bindings.unbind)
        add("GET", "/v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation", bindings.lastOperation)
        self.router = router
        self.pipeline = pipeline
    }

    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        let match = router.match(method: request.method, path: request.path)
        if let response = answerAtOnce(request, match) { return response }
        // Only a route added without `immediate:` waits; `answerAtOnce` answers every other match.
        guard case .found(let handler, let parameters, _) = match else { return Problem.internalError.response() }
        return await handler(request, parameters)
    }

    /// Health, blueprints and requests no route takes (404, 405): nothing to wait for. Every
    /// other route waits for the broker and goes to `respond(to:)`, which matches it again
    /// (a dictionary lookup for most paths).
    public func respondImmediately(to request: HTTPRequest) -> HTTPResponse? {
        answerAtOnce(request, router.match(method: request.method, path: request.path))
    }

    /// The response to a match that needs no waiting; nil for a route that waits.
    private func answerAtOnce(_ request: HTTPRequest, _ match: Router.Match) -> HTTPResponse? {
        switch match {
        case .found:
            nil
        case .immediate(let handler, let parameters, _):
            handler(request, parameters)
        case .methodNotAllowed(let allowed):
            pipeline.unrouted(request, Problem.methodNotAllowed(request.method, allowed: allowed))
        case .notFound:
            pipeline.unrouted(request, Problem.notFound("no such resource: \(request.path)"))
        }
    }
}
