import EnvironmentModel
import HTTPServer
import Logging
import Provisioning
import Testing
@testable import WarrenAPI
import WarrenTestSupport
import WireFormat

/// GET /v1/environments/{id}/queues and /keda in process, over the `FakeBroker`: what they show,
/// what they leave out (Warren's claim queue), what they refuse before any broker call, and
/// that they cost only the two calls `Provisioner.queueDepths` says. The Python suite
/// (test_queue_depth.py) checks the figures against a real broker.
@Suite struct ScalingRoutesTests {
    let broker = FakeBroker()
    let api: WarrenAPI
    static let vhost = "warren.team-a.fraud-scoring"

    init() throws {
        let path = "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))"
        FileManagerLite.write(path, "team-a \(TokenStoreTests.digest("alpha"))\nteam-b \(TokenStoreTests.digest("beta"))\n")
        let provisioner = Provisioner(
            admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
        api = WarrenAPI(
            provisioner: provisioner, tokens: try TokenStore(path: path),
            endpoint: AMQPEndpoint(host: "mq.internal", port: 5672), logger: Logger(label: "test"))
    }

    func get(_ path: String, query: String? = nil, token: String = "alpha") async -> HTTPResponse {
        let headers = HTTPHeaders([("Host", "localhost"), ("Authorization", "Bearer \(token)")])
        return await api.respond(to: HTTPRequest(method: "GET", path: path, query: query, headers: headers))
    }

    func json(_ response: HTTPResponse) -> JSONValue {
        (try? StrictJSON.parse(response.body)) ?? .null
    }

    func create(_ body: String = #"{"name":"fraud-scoring","queues":[{"name":"jobs","dead_letter":true}]}"#) async throws {
        let headers = HTTPHeaders([("Host", "localhost"), ("Authorization", "Bearer alpha"), ("Content-Type", "application/json")])
        let response = await api.respond(to: HTTPRequest(method: "POST", path: "/v1/environments", headers: headers, body: Array(body.utf8)))
        try #require(response.status == 201, "\(String(decoding: response.body, as: UTF8.self))")
    }

    @Test func queuesListsEveryQueueButWarrensOwnByName() async throws {
        try await create()
        // One the tenant declared itself.
        _ = try await broker.putQueue(vhost: Self.vhost, name: "celery", durable: true, autoDelete: false, arguments: [:])
        broker.state.withLock { state in
            state.queues["\(Self.vhost)/jobs"]?.messages = 7
            state.queues["\(Self.vhost)/celery"]?.messages = 2
        }
        #expect(broker.state.withLock { $0.queues["\(Self.vhost)/warren.claim"] } != nil)
        let before = broker.calls.count
        let response = await get("/v1/environments/fraud-scoring/queues")
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "application/json")
        guard case .array(let queues)? = json(response)["queues"] else { Issue.record("no queues"); return }
        #expect(queues.compactMap { $0["name"]?.stringValue } == ["celery", "jobs", "jobs.dlq"])
        #expect(queues[1] == [
            "name": "jobs", "messages": 7, "messages_ready": 7, "messages_unacknowledged": 0, "consumers": 0,
            "publish_rate": 0, "deliver_rate": 0,
        ])
        // The record's read and the vhost's listing, nothing else.
        #expect(broker.calls[before...].sorted() == ["GET queues of a vhost", "GET vhost"])
    }

    @Test func anotherTeamsOrAForeignVhostIsNotFound() async throws {
        try await create()
        #expect(await get("/v1/environments/fraud-scoring/queues", token: "beta").status == 404)
        #expect(await get("/v1/environments/fraud-scoring/keda", query: "queue=jobs", token: "beta").status == 404)
        // A vhost of the team's name that no create made (its description is no record).
        try await broker.putVhost("warren.team-a.by-hand", description: "made by hand", tags: [], defaultQueueType: nil)
        _ = try await broker.putQueue(vhost: "warren.team-a.by-hand", name: "jobs", durable: true, autoDelete: false, arguments: [:])
        #expect(await get("/v1/environments/by-hand/queues").status == 404)
        #expect(await get("/v1/environments/by-hand/keda", query: "queue=jobs").status == 404)
        #expect(await get("/v1/environments/nothing-here/queues").status == 404)
    }

    @Test func kedaRendersBothManifestsWithKubernetesKeys() async throws {
        try await create()
        let response = await get(
            "/v1/environments/fraud-scoring/keda", query: "queue=jobs.dlq&deployment=gpu-worker&target=5&min_replicas=1&max_replicas=8")
        #expect(response.status == 200)
        let body = json(response)
        let scaled = body["scaled_object"]
        #expect(scaled?["apiVersion"] == "keda.sh/v1alpha1")
        #expect(scaled?["kind"] == "ScaledObject")
        #expect(scaled?["metadata"] == ["name": "gpu-worker"])
        #expect(scaled?["spec"]?["scaleTargetRef"] == ["name": "gpu-worker"])
        #expect(scaled?["spec"]?["minReplicaCount"] == 1)
        #expect(scaled?["spec"]?["maxReplicaCount"] == 8)
        #expect(scaled?["spec"]?["triggers"] == [[
            "type": "rabbitmq",
            "metadata": ["protocol": "amqp", "mode": "QueueLength", "value": "5", "queueName": "jobs.dlq", "vhostName": .string(Self.vhost)],
            "authenticationRef": ["name": "fraud-scoring-rabbitmq"],
        ]])
        #expect(body["trigger_authentication"] == [
            "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": ["name": "fraud-scoring-rabbitmq"],
            "spec": ["secretTargetRef": [["parameter": "host", "name": "fraud-scoring-rabbitmq", "key": "host"]]],
        ])
        #expect(body["secret"] == [
            "name": "fraud-scoring-rabbitmq", "key": "host",
            "uri_template": "amqp://{username}:{password}@mq.internal:5672/warren.team-a.fraud-scoring",
        ])
    }

    @Test func kedaNamesAnUnknownQueueAndLeavesWarrensOwnOut() async throws {
        try await create()
        for queue in ["nope", "warren.claim"] {
            let response = await get("/v1/environments/fraud-scoring/keda", query: "queue=\(queue)")
            #expect(response.status == 404)
            #expect(json(response)["detail"]?.stringValue?.contains("no queue \(queue) in environment fraud-scoring") == true)
        }
    }

    @Test(arguments: [
        ("", ["queue"]),
        ("queue=jobs&target=0&min_replicas=x", ["target", "min_replicas"]),
        ("queue=jobs&min_replicas=4&max_replicas=3", ["max_replicas"]),
        ("queue=jobs&deployment=Gpu&secret=a-", ["deployment", "secret"]),
    ])
    func kedaRefusesBadParametersBeforeAnyBrokerCall(query: String, fields: [String]) async {
        let response = await get("/v1/environments/fraud-scoring/keda", query: query)
        #expect(response.status == 400)
        guard case .array(let errors)? = json(response)["errors"] else { Issue.record("no errors"); return }
        #expect(errors.compactMap { $0["field"]?.stringValue } == fields)
        #expect(broker.calls.isEmpty)
    }
}

/// The parameters of the KEDA manifests, without a route.
@Suite struct KedaRequestTests {
    @Test func defaultsFollowTheEnvironmentsName() throws {
        let request = try KedaRequest(query: "queue=jobs", environment: "scoring--")
        #expect(request == KedaRequest(queue: "jobs", deployment: "scoring", secret: "scoring-rabbitmq", target: 10, minReplicas: 0, maxReplicas: 10))
        // A min_replicas above the default maximum raises the maximum with it.
        #expect(try KedaRequest(query: "queue=jobs&min_replicas=12", environment: "s").maxReplicas == 12)
    }

    @Test func queueValuesArePercentDecodedWithPlusAsASpace() throws {
        #expect(try KedaRequest(query: "queue=a+b%2Bc%3Ad", environment: "s").queue == "a b+c:d")
        #expect(throws: Problem.self) { try KedaRequest(query: "queue=%E2%28", environment: "s") }  // not UTF-8
    }

    @Test(arguments: [
        "a", "a.b", "gpu-worker-1", "0", String(repeating: "a", count: 63), "a-b.c-d",
    ])
    func kubernetesNamesAreTaken(name: String) throws {
        #expect(try KedaRequest(query: "queue=q&deployment=\(name)", environment: "s").deployment == name)
    }

    @Test(arguments: [
        "A", "-a", "a-", "a..b", ".a", "a.", "a_b", "a.-b", String(repeating: "a", count: 64), "é",
    ])
    func otherNamesAreRefused(name: String) {
        #expect(throws: Problem.self) { try KedaRequest(query: "queue=q&deployment=\(PercentEncoding.encode(name))", environment: "s") }
    }
}
