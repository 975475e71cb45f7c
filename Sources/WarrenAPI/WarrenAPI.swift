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
        platforms: PlatformStore? = nil, osbSecret: [UInt8] = [], accessLog: (any AccessLog)? = nil
    ) {
        let pipeline = RequestPipeline(tokens: tokens, logger: logger, accessLog: accessLog ?? LoggerAccessLog(logger: logger))
        let environments = EnvironmentHandlers(provisioner: provisioner, endpoint: endpoint, blueprints: blueprints)
        let credentials = CredentialHandlers(provisioner: provisioner, endpoint: endpoint, environments: environments)
        var router = Router()
        router.add("GET", "/healthz", pipeline.route("/healthz", authenticated: false) { _ in Health.live() })
        router.add("GET", "/readyz", pipeline.route("/readyz", authenticated: false) { _ in await Health.ready(provisioner) })
        if let metrics {
            router.add("GET", "/metrics", pipeline.route("/metrics", authenticated: false) { _ in
                HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]), body: metrics())
            })
        }
        router.add("POST", "/v1/environments", pipeline.route("/v1/environments", environments.create))
        router.add("GET", "/v1/environments", pipeline.route("/v1/environments", environments.list))
        router.add("GET", "/v1/environments/{id}", pipeline.route("/v1/environments/{id}", environments.get))
        router.add("PATCH", "/v1/environments/{id}", pipeline.route("/v1/environments/{id}", environments.update))
        router.add("DELETE", "/v1/environments/{id}", pipeline.route("/v1/environments/{id}", environments.delete))
        router.add("POST", "/v1/environments/{id}/reconcile", pipeline.route("/v1/environments/{id}/reconcile", environments.reconcile))
        router.add("POST", "/v1/environments/{id}/credentials", pipeline.route("/v1/environments/{id}/credentials", credentials.issue))
        router.add(
            "DELETE", "/v1/environments/{id}/credentials/{username}",
            pipeline.route("/v1/environments/{id}/credentials/{username}", credentials.revoke))
        router.add("GET", "/v1/blueprints", pipeline.route("/v1/blueprints", BlueprintHandlers(blueprints: blueprints).list))
        // Open Service Broker API v2.17 (see OSBInstanceHandlers, OSBBindingHandlers): basic
        // authentication per platform; without a platforms file every /v2 request is a 401.
        let osb = OSBInstanceHandlers(
            provisioner: provisioner, catalog: OSBCatalog(blueprints: blueprints), blueprints: blueprints, secret: osbSecret)
        let bindings = OSBBindingHandlers(provisioner: provisioner, endpoint: endpoint, secret: osbSecret)
        let instance = "/v2/service_instances/{instance_id}"
        let binding = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}"
        router.add("GET", "/v2/catalog", pipeline.osbRoute("/v2/catalog", platforms: platforms, osb.catalogResponse))
        router.add("PUT", instance, pipeline.osbRoute("/v2/service_instances/{instance_id}", platforms: platforms, osb.provision))
        router.add("GET", instance, pipeline.osbRoute("/v2/service_instances/{instance_id}", platforms: platforms, osb.fetch))
        router.add("PATCH", instance, pipeline.osbRoute("/v2/service_instances/{instance_id}", platforms: platforms, osb.update))
        router.add("DELETE", instance, pipeline.osbRoute("/v2/service_instances/{instance_id}", platforms: platforms, osb.deprovision))
        router.add(
            "GET", instance + "/last_operation",
            pipeline.osbRoute("/v2/service_instances/{instance_id}/last_operation", platforms: platforms, osb.lastOperation))
        let bindingRoute: StaticString = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}"
        router.add("PUT", binding, pipeline.osbRoute(bindingRoute, platforms: platforms, bindings.bind))
        router.add("GET", binding, pipeline.osbRoute(bindingRoute, platforms: platforms, bindings.fetch))
        router.add("DELETE", binding, pipeline.osbRoute(bindingRoute, platforms: platforms, bindings.unbind))
        router.add(
            "GET", binding + "/last_operation",
            pipeline.osbRoute("/v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation", platforms: platforms, bindings.lastOperation))
        self.router = router
        self.pipeline = pipeline
    }

    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        switch router.match(method: request.method, path: request.path) {
        case .found(let handler, let parameters, _):
            return await handler(request, parameters)
        case .methodNotAllowed(let allowed):
            return pipeline.unrouted(request, Problem.methodNotAllowed(request.method, allowed: allowed))
        case .notFound:
            return pipeline.unrouted(request, Problem.notFound("no such resource: \(request.path)"))
        }
    }
}
