import EnvironmentModel
import HTTPServer
import Provisioning

/// What autoscalers need of an environment, for tenants who have no management access: its
/// queues' figures (`/queues`), and KEDA manifests that scale a Deployment on one queue (`/keda`).
struct ScalingHandlers: Sendable {
    let provisioner: Provisioner
    let endpoint: AMQPEndpoint
    let environments: EnvironmentHandlers

    /// GET /v1/environments/{id}/queues: the broker's statistics, which lag by its stats
    /// interval (5 s by default); see `Provisioner.queueDepths` for what it costs.
    func queues(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environments.environmentID(context)
        try provisioner.takeRead(team: context.team)
        guard let depths = try await provisioner.logging(to: context.logger).queueDepths(team: context.team, name: id) else {
            throw Problem.notFound("no environment \(id)")
        }
        return JSON.response(200, QueueDepthsBody(queues: depths.map(QueueDepthsBody.Queue.init)))
    }

    /// GET /v1/environments/{id}/keda?queue=NAME: the parameters are checked first (a 400
    /// reads nothing of the broker), then the queue is looked for among the environment's, as
    /// `/queues` lists them: the same two management calls.
    func keda(_ context: RequestContext) async throws -> HTTPResponse {
        let id = try environments.environmentID(context)
        let request = try KedaRequest(query: context.request.query, environment: id)
        try provisioner.takeRead(team: context.team)
        guard let depths = try await provisioner.logging(to: context.logger).queueDepths(team: context.team, name: id) else {
            throw Problem.notFound("no environment \(id)")
        }
        guard depths.contains(where: { $0.name == request.queue }) else {
            throw Problem.notFound("no queue \(request.queue) in environment \(id); GET /v1/environments/\(id)/queues lists them")
        }
        let vhost = EnvironmentNaming.vhost(team: context.team, name: id)
        return JSON.response(200, KedaManifestsBody(request, vhost: vhost, endpoint: endpoint), keysAsWritten: true)
    }
}
