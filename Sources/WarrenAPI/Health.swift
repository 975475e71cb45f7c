import HTTPServer
import Provisioning

/// GET /healthz: the process serves. GET /readyz: the broker answers, Warren's credential
/// can administer it, and no node is in a memory or disk alarm (a 503 names the alarm: while
/// it lasts the broker blocks every publisher, so new environments would not work either).
enum Health {
    struct Live: Encodable { var status = "ok" }

    struct Ready: Encodable {
        struct Broker: Encodable { var rabbitmqVersion: String }
        var status = "ready"
        var broker: Broker
    }

    /// The same bytes every time: encoded once.
    private static let liveBody = JSON.encode(Live())

    static func live() -> HTTPResponse {
        HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "application/json")]), body: liveBody)
    }

    static func ready(_ provisioner: Provisioner) async -> HTTPResponse {
        do {
            let version = try await provisioner.readiness()
            return JSON.response(200, Ready(broker: .init(rabbitmqVersion: version)))
        } catch let error as ProvisioningError {
            return Problem.brokerUnavailable("not ready: \(error.detail)").response()
        } catch {
            return Problem.brokerUnavailable("not ready").response()
        }
    }
}
