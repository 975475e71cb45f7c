import EnvironmentModel
import HTTPServer
import Provisioning

/// GET /healthz: the process serves. GET /readyz: the broker answers and Warren's credential
/// can administer it; the body names any memory or disk alarm in force (see `readiness()` for
/// why an alarm is no reason to take Warren out of service).
enum Health {
    struct Live: Encodable { var status = "ok" }

    struct Ready: Encodable {
        struct Broker: Encodable { var rabbitmqVersion: String }
        var status = "ready"
        var broker: Broker
        /// "memory alarm on node rabbit@host": while one lasts the broker blocks every
        /// publisher, every team's. Empty when there is none.
        var alarms: [String]
    }

    /// The same bytes every time: encoded once.
    private static let liveBody = JSON.encode(Live())

    static func live() -> HTTPResponse {
        HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "application/json")]), body: liveBody)
    }

    static func ready(_ provisioner: Provisioner) async -> HTTPResponse {
        do {
            let readiness = try await provisioner.readiness()
            return JSON.response(200, Ready(broker: .init(rabbitmqVersion: readiness.rabbitmqVersion), alarms: readiness.alarms.map(\.description)))
        } catch let error as ProvisioningError {
            return Problem.brokerUnavailable("not ready: \(error.detail)").response()
        } catch {
            return Problem.brokerUnavailable("not ready").response()
        }
    }
}
