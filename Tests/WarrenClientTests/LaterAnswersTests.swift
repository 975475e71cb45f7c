import Foundation
import HTTPTypes
import OpenAPIRuntime
import Testing
import WarrenClient

/// A portal's client, generated from this openapi.yaml, talking to a later Warren whose answers
/// carry fields this document does not know: it reads them all the same (openapi.yaml's
/// "Answers may gain fields"). Through the generated client and its decoder, over a stub
/// transport that answers as that later Warren would.
@Suite struct LaterAnswersTests {
    private struct LaterWarren: ClientTransport {
        let body: String

        func send(_ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String) async throws -> (HTTPResponse, HTTPBody?) {
            (HTTPResponse(status: .ok, headerFields: [.contentType: "application/json"]), HTTPBody(self.body))
        }
    }

    /// An environment as this release answers it, with a field of a later one at the top, in
    /// the connection, in a queue and in the exchange.
    private static let environment = """
        {"id": "jobs", "name": "jobs", "team": "team-a", "vhost": "warren.team-a.jobs",
         "exchange": {"name": "jobs", "type": "direct", "durable": true, "later": 1},
         "queue": {"name": "jobs", "type": "quorum", "durable": true, "later": {"nested": [1, 2]}},
         "routing_key": "jobs", "created_at": "2026-12-07T05:00:00Z", "protected": false,
         "status": "ready", "users": ["warren.team-a.jobs.0123456789abcdef"],
         "resources": {"vhost": true, "exchange": true, "queue": true, "binding": true, "user": true},
         "missing": [],
         "connection": {"host": "127.0.0.1", "port": 5672, "vhost": "warren.team-a.jobs",
                        "uri": "amqp://127.0.0.1:5672/warren.team-a.jobs", "stream_port": 5552},
         "a_field_of_a_later_release": {"anything": true}}
        """

    @Test func anAnswerWithFieldsOfALaterReleaseIsRead() async throws {
        let client = Client(serverURL: URL(string: "http://warren.test")!, transport: LaterWarren(body: Self.environment))
        let answer = try await client.getEnvironment(path: .init(id: "jobs"))
        let environment = try answer.ok.body.json
        #expect(environment.name == "jobs" && environment.connection.port == 5672 && environment.queue.name == "jobs")
    }
}
