import EnvironmentModel
import HTTPServer
import Logging
import Provisioning
import Testing
@testable import WarrenAPI
import WarrenTestSupport
import WireFormat

/// The Secret renderer's names (Kubernetes refuses a Secret whose name is not a DNS-1123
/// subdomain of at most 253 characters, or a label value that is not a 63-character label), the
/// parameters' checks, and the create and rotation answers in process over the `FakeBroker`.
/// The Python suite (test_kubernetes_secret.py) connects with the rendered URI.
@Suite struct KubernetesSecretTests {
    /// Kubernetes' own rules, written out independently of the renderer.
    static func isSubdomain(_ name: String) -> Bool {
        name.utf8.count <= 253 && name.wholeMatch(of: /[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/) != nil
    }

    static func isLabelValue(_ value: String) -> Bool {
        value.utf8.count <= 63 && value.wholeMatch(of: /([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]/) != nil
    }

    @Test func aValidNameIsKeptAsItIs() {
        #expect(KubernetesSecret.name(environment: "fraud-scoring", setName: "consumer") == "fraud-scoring-consumer")
        #expect(KubernetesSecret.name(environment: "a--b", setName: "full") == "a--b-full")
        #expect(KubernetesSecret.labelValue("fraud-scoring") == "fraud-scoring")
    }

    @Test(arguments: [
        ("scoring-", "full"),  // an environment name may end with '-': "scoring--full" is valid, kept
        ("x", "App 1/Blue"),  // an OSB binding id: any characters
        ("x", "...."),
        ("x", "ÅÄÖ"),
        (String(repeating: "a", count: 63), String(repeating: "b", count: 255)),  // over 253
        (String(repeating: "a", count: 63), String(repeating: "b.", count: 120)),
        ("e", "-leading-and-trailing-"),
    ])
    func everyNameIsAValidSubdomain(environment: String, setName: String) {
        let name = KubernetesSecret.name(environment: environment, setName: setName)
        #expect(Self.isSubdomain(name), "\(name)")
        let label = KubernetesSecret.labelValue(setName)
        #expect(Self.isLabelValue(label), "\(label)")
    }

    @Test func aChangedNameCarriesAHashSoNamesStayApart() {
        let long = String(repeating: "a", count: 63)
        let one = KubernetesSecret.name(environment: long, setName: String(repeating: "b", count: 200) + "1")
        let two = KubernetesSecret.name(environment: long, setName: String(repeating: "b", count: 200) + "2")
        #expect(one != two)
        #expect(one.utf8.count == 253)
        #expect(KubernetesSecret.name(environment: "x", setName: "A") != KubernetesSecret.name(environment: "x", setName: "a"))
        #expect(KubernetesSecret.name(environment: "x", setName: "A").hasPrefix("x-a-"))
        // Labels of a 63-character environment name ending in '-' are changed the same way.
        #expect(KubernetesSecret.labelValue("scoring-") != "scoring")
    }

    @Test func rendersTheWellKnownEntries() throws {
        let endpoint = AMQPEndpoint(host: "mq.internal", port: 5672)
        let credentials = IssuedCredentials(username: "warren.t.e.0000000011111111", password: "p@ss/word", role: .consumer)
        let secret = KubernetesSecret(
            KubernetesSecret.Source(environment: "e", vhost: "warren.t.e", credentials: credentials, endpoint: endpoint), namespace: "shop")
        #expect(secret.metadata == .init(
            name: "e-consumer", namespace: "shop",
            labels: ["app.kubernetes.io/managed-by": "warren", "warren/environment": "e", "warren/role": "consumer"]))
        #expect(secret.stringData == [
            "type": "rabbitmq", "provider": "warren", "host": "mq.internal", "port": "5672",
            "username": "warren.t.e.0000000011111111", "password": "p@ss/word", "vhost": "warren.t.e",
            "uri": "amqp://warren.t.e.0000000011111111:p%40ss%2Fword@mq.internal:5672/warren.t.e",
        ])
        // camelCase keys even through the answers' snake_case encoder.
        let json = try StrictJSON.parse(JSON.encode(["items": [secret]]))
        let item = json["items"]?.arrayValue?.first
        #expect(item?["apiVersion"]?.stringValue == "v1")
        #expect(item?["stringData"]?["uri"]?.stringValue != nil)
        #expect(item?["api_version"] == nil)
    }

    @Test(arguments: [
        ("secret=kubernetes", true, nil as String?),
        ("secret=kubernetes&secret_namespace=shop-1", true, "shop-1"),
        ("secret_namespace=shop", true, "shop"),
        ("", false, nil),
        ("force=true", false, nil),
    ])
    func parameters(query: String, asked: Bool, namespace: String?) throws {
        let request = try SecretRequest.parse(query: query)
        #expect((request != nil) == asked)
        #expect(request?.namespace == namespace)
    }

    @Test(arguments: [
        ("secret=yaml", ["secret"]),
        ("secret=kubernetes&secret_namespace=Shop", ["secret_namespace"]),
        ("secret=kubernetes&secret_namespace=-a", ["secret_namespace"]),
        ("secret=kubernetes&secret_namespace=" + String(repeating: "a", count: 64), ["secret_namespace"]),
        ("secret=kubernetes&secret_namespace=a.b", ["secret_namespace"]),
        ("secret=kubernetes&secret_namespace=", ["secret_namespace"]),
        ("secret=kubernetes&secret=kubernetes", ["secret"]),
    ])
    func badParametersAreNamed(query: String, fields: [String]) {
        #expect(throws: Problem.self) { try SecretRequest.parse(query: query) }
        do {
            _ = try SecretRequest.parse(query: query)
        } catch {
            #expect(error.errors.map(\.field) == fields)
        }
    }
}

/// The routes in process: a create with roles answers one Secret per set, a bad namespace is
/// refused before any broker call, and without the parameter the answer has no such key.
@Suite struct KubernetesSecretRoutesTests {
    let broker = FakeBroker()
    let api: WarrenAPI

    init() throws {
        let path = "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))"
        FileManagerLite.write(path, "team-a \(TokenStoreTests.digest("alpha"))\n")
        let provisioner = Provisioner(
            admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
        api = WarrenAPI(
            provisioner: provisioner, tokens: try TokenStore(path: path),
            endpoint: AMQPEndpoint(host: "mq.internal", port: 5672), logger: Logger(label: "test"))
    }

    func post(_ path: String, query: String?, body: String) async -> (HTTPResponse, JSONValue) {
        let headers = HTTPHeaders([("Host", "localhost"), ("Authorization", "Bearer alpha"), ("Content-Type", "application/json")])
        let response = await api.respond(to: HTTPRequest(method: "POST", path: path, query: query, headers: headers, body: Array(body.utf8)))
        return (response, (try? StrictJSON.parse(response.body)) ?? .null)
    }

    @Test func createWithRolesAnswersOneSecretPerSet() async throws {
        let (response, json) = await post(
            "/v1/environments", query: "secret=kubernetes&secret_namespace=shop", body: #"{"name":"orders","roles":["producer","consumer"]}"#)
        #expect(response.status == 201)
        let secrets = try #require(json["kubernetes_secrets"]?.arrayValue)
        #expect(secrets.compactMap { $0["metadata"]?["name"]?.stringValue } == ["orders-full", "orders-producer", "orders-consumer"])
        #expect(secrets.allSatisfy { $0["metadata"]?["namespace"]?.stringValue == "shop" })
        let usernames = secrets.compactMap { $0["stringData"]?["username"]?.stringValue }
        #expect(usernames.first == json["credentials"]?["username"]?.stringValue)
        #expect(Set(usernames).count == 3)

        let (rotated, rotation) = await post("/v1/environments/orders/credentials", query: "secret=kubernetes", body: #"{"role":"consumer"}"#)
        #expect(rotated.status == 201)
        let secret = try #require(rotation["kubernetes_secrets"]?.arrayValue?.first)
        #expect(secret["metadata"]?["name"]?.stringValue == "orders-consumer")
        #expect(secret["metadata"]?["namespace"] == nil)
        #expect(secret["stringData"]?["password"]?.stringValue == rotation["credentials"]?["password"]?.stringValue)
    }

    @Test func aBadNamespaceIsRefusedBeforeAnyBrokerCall() async {
        let (response, json) = await post("/v1/environments", query: "secret=kubernetes&secret_namespace=Shop", body: #"{"name":"orders"}"#)
        #expect(response.status == 400)
        #expect(json["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } == ["secret_namespace"])
        #expect(broker.calls.isEmpty)
    }

    @Test func withoutTheParameterThereIsNoSecret() async {
        let (response, json) = await post("/v1/environments", query: nil, body: #"{"name":"orders"}"#)
        #expect(response.status == 201)
        #expect(json["kubernetes_secrets"] == nil)
        #expect(!String(decoding: response.body, as: UTF8.self).contains("kubernetes"))
    }
}

extension JSONValue {
    fileprivate var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }
}
