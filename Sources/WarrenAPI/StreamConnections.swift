import EnvironmentModel
import Provisioning

/// What an answer about an environment with streams tells a stream client: where the stream
/// protocol listens (`connection.stream`) when the broker has the `rabbitmq_stream` plugin,
/// and otherwise, in `notes`, how to read a stream over AMQP. An environment without streams
/// gets neither, and costs no broker call more.
enum StreamConnections {
    /// The broker's stream port when the environment has a stream and the broker a listener.
    /// A failure to read the listeners leaves the stream address out rather than failing the
    /// answer: a create's answer carries the only copy of its passwords.
    static func port(for environment: Environment, _ provisioner: Provisioner) async -> Int?? {
        guard !environment.spec.streamNames.isEmpty else { return nil }
        return .some(try? await provisioner.streamPort())
    }

    /// Fills `connection.stream` (with the credentials where the answer issues them), or the
    /// note that says how to read the streams over AMQP.
    static func describe(
        _ environment: Environment, port: Int??, endpoint: AMQPEndpoint, credentials: IssuedCredentials?,
        connection: inout ConnectionBody, summary: inout EnvironmentSummaryBody
    ) {
        guard case .some(let found) = port else { return }
        if let found {
            connection.stream = endpoint.stream(port: found, vhost: environment.vhost, credentials: credentials)
        } else {
            let names = environment.spec.streamNames.joined(separator: ", ")
            summary.note(["the broker has no stream protocol listener (the rabbitmq_stream plugin): read the streams (\(names)) over AMQP with a prefetch (basic.qos) and the consumer argument x-stream-offset (first, last, next, an offset or a timestamp)"])
        }
    }
}
