import HTTPServer
import Logging
import Provisioning
import RabbitManagement
import Synchronization
import Testing
@testable import WarrenAPI
import WireFormat

/// A broker that is never reachable and counts how often anyone tried: a request that should
/// be refused before it reaches the broker must leave the count at zero. An atomic counter, not
/// a Mutex: readiness asks two calls at once, and ThreadSanitizer does not see the Mutex of the
/// prebuilt Synchronization module lock, so it reported the counter's update as a race.
final class UnreachableBroker: BrokerAdmin, Sendable {
    private let counter = Atomic<Int>(0)
    var attempts: Int { counter.load(ordering: .sequentiallyConsistent) }
    private func refuse() throws -> Never {
        counter.wrappingAdd(1, ordering: .sequentiallyConsistent)
        throw ManagementError(code: .unreachable, summary: "management API unreachable")
    }
    func overview() async throws -> Overview { try refuse() }
    func whoami() async throws -> WhoAmI { try refuse() }
    func vhost(_ name: String) async throws -> VhostInfo? { try refuse() }
    func vhosts() async throws -> [VhostInfo] { try refuse() }
    func putVhost(_ name: String, description: String, tags: [String], defaultQueueType: String?) async throws -> Bool { try refuse() }
    func globalParameter(_ name: String) async throws -> JSONValue? { try refuse() }
    func putGlobalParameter(_ name: String, value: JSONValue) async throws { try refuse() }
    func globalParameters(prefix: String) async throws -> [String: JSONValue] { try refuse() }
    func deleteVhost(_ name: String) async throws -> Bool { try refuse() }
    func users() async throws -> [UserInfo] { try refuse() }
    func putUser(_ name: String, passwordHash: String, tags: [String]) async throws { try refuse() }
    func deleteUser(_ name: String) async throws -> Bool { try refuse() }
    func putPermissions(vhost: String, user: String, configure: String, write: String, read: String) async throws { try refuse() }
    func permissions(vhost: String) async throws -> [PermissionInfo] { try refuse() }
    func permissions() async throws -> [PermissionInfo] { try refuse() }
    func deleteQueue(vhost: String, name: String) async throws -> Bool { try refuse() }
    func purgeQueue(vhost: String, name: String) async throws -> Bool { try refuse() }
    func holdsMessages(vhost: String, name: String) async throws -> Bool { try refuse() }
    func putExchange(vhost: String, name: String, type: String, durable: Bool, autoDelete: Bool, arguments: [String: JSONValue]) async throws -> Bool { try refuse() }
    func exchange(vhost: String, name: String) async throws -> ExchangeInfo? { try refuse() }
    func putQueue(vhost: String, name: String, durable: Bool, autoDelete: Bool, arguments: [String: JSONValue]) async throws -> Bool { try refuse() }
    func queue(vhost: String, name: String) async throws -> QueueInfo? { try refuse() }
    func bind(vhost: String, exchange: String, queue: String, routingKey: String, arguments: [String: JSONValue]) async throws { try refuse() }
    func bindings(vhost: String, exchange: String, queue: String) async throws -> [BindingInfo] { try refuse() }
    func putVhostLimit(vhost: String, name: String, value: Int) async throws { try refuse() }
    func putPolicy(vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int, applyTo: String) async throws { try refuse() }
    func deletePolicy(vhost: String, name: String) async throws -> Bool { try refuse() }
    func putUserLimit(user: String, name: String, value: Int) async throws { try refuse() }
    func userLimits() async throws -> [String: [String: Int]] { try refuse() }
    func vhostLimits() async throws -> [String: [String: Int]] { try refuse() }
    func putOperatorPolicy(vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int, applyTo: String) async throws { try refuse() }
    func deleteOperatorPolicy(vhost: String, name: String) async throws -> Bool { try refuse() }
    func operatorPolicies() async throws -> [PolicyInfo] { try refuse() }
    func usersWithoutPermissions() async throws -> [UserInfo] { try refuse() }
    func passwordHash(ofUser name: String) async throws -> String? { try refuse() }
    func deleteUsers(_ names: [String]) async throws { try refuse() }
    func nodes() async throws -> [NodeInfo] { try refuse() }
    func queueTotals() async throws -> [String: QueueTotals] { try refuse() }
    func connectionCounts() async throws -> [String: Int] { try refuse() }
    func logging(to logger: Logger) -> any BrokerAdmin { self }
}

@Suite struct RoutingTests {
    let broker = UnreachableBroker()
    let api: WarrenAPI

    init() throws {
        let path = "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))"
        FileManagerLite.write(path, "team-a \(TokenStoreTests.digest("alpha"))\n")
        let provisioner = Provisioner(admin: broker, serviceUser: "guest", logger: Logger(label: "test"))
        api = WarrenAPI(
            provisioner: provisioner, tokens: try TokenStore(path: path),
            endpoint: AMQPEndpoint(host: "127.0.0.1", port: 5672), logger: Logger(label: "test"))
    }

    func send(_ method: String, _ path: String, token: String? = "alpha", contentType: String? = "application/json", body: String = "") async -> HTTPResponse {
        var headers = HTTPHeaders([("Host", "localhost")])
        if let token { headers.add("Authorization", "Bearer \(token)") }
        if let contentType { headers.add("Content-Type", contentType) }
        return await api.respond(to: HTTPRequest(method: method, path: path, headers: headers, body: Array(body.utf8)))
    }

    func problemType(_ response: HTTPResponse) -> String? {
        let text = String(decoding: response.body, as: UTF8.self)
        return text.split(separator: "\"").first { $0.hasPrefix("urn:warren:problem:") }.map(String.init)
    }

    @Test func healthNeedsNoTokenNorBroker() async {
        let response = await send("GET", "/healthz", token: nil)
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"status":"ok"}"#)
        #expect(response.headers["X-Request-ID"] != nil)
    }

    @Test func readinessFailsWith503WhenTheBrokerIsUnreachable() async {
        let response = await send("GET", "/readyz", token: nil)
        #expect(response.status == 503)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        #expect(response.headers["Retry-After"] != nil)
    }

    @Test func brokerDownIsA503WithRetryAfter() async {
        let response = await send("POST", "/v1/environments", body: #"{"name":"a"}"#)
        #expect(response.status == 503)
        #expect(problemType(response) == "urn:warren:problem:broker-unavailable")
        #expect(response.headers["Retry-After"] == "5")
    }

    typealias RefusedCase = (method: String, path: String, token: String?, contentType: String?, body: String, status: Int)
    static let refusedCases: [RefusedCase] = [
        ("POST", "/v1/environments", nil, "application/json", #"{"name":"a"}"#, 401),
        ("GET", "/v1/environments", "wrong", "application/json", "", 401),
        ("POST", "/v1/environments", "alpha", "text/plain", #"{"name":"a"}"#, 415),
        ("POST", "/v1/environments", "alpha", nil, #"{"name":"a"}"#, 415),
        ("POST", "/v1/environments", "alpha", "application/json", #"{"name":"A"}"#, 400),
        ("POST", "/v1/environments", "alpha", "application/json", "{", 400),
        ("GET", "/v1/environments/Not..Valid", "alpha", nil, "", 404),
        ("DELETE", "/v1/environments/a%2Fb", "alpha", nil, "", 404),
        ("GET", "/v1/nothing", "alpha", nil, "", 404),
        ("PUT", "/v1/environments", "alpha", nil, "", 405),
    ]

    @Test(arguments: 0..<refusedCases.count)
    func refusedBeforeTheBroker(index: Int) async {
        let (method, path, token, contentType, body, status) = Self.refusedCases[index]
        let response = await send(method, path, token: token, contentType: contentType, body: body)
        #expect(response.status == status)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        #expect(broker.attempts == 0)
        if status == 401 { #expect(response.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true) }
        if status == 405 { #expect(response.headers["Allow"]?.contains("POST") == true) }
    }

    /// Health, blueprints and refusals are answered on the event loop's thread, with the same
    /// bytes `respond(to:)` gives; a route that needs the broker never is (it would block the
    /// loop), and nothing here reaches the broker.
    @Test func onlyWhatWaitsForNothingIsAnsweredImmediately() async {
        func request(_ method: String, _ path: String, token: String?) -> HTTPRequest {
            var headers = HTTPHeaders([("Host", "localhost")])
            if let token { headers.add("Authorization", "Bearer \(token)") }
            return HTTPRequest(method: method, path: path, headers: headers)
        }
        let immediate: [(String, String, String?, Int)] = [
            ("GET", "/healthz", nil, 200), ("HEAD", "/healthz", nil, 200), ("GET", "/v1/blueprints", "alpha", 200),
            ("GET", "/v1/blueprints", nil, 401), ("GET", "/v1/blueprints", "wrong", 401),
            ("GET", "/v1/nothing", "alpha", 404), ("PUT", "/v1/environments", "alpha", 405),
        ]
        for (method, path, token, status) in immediate {
            let now = api.respondImmediately(to: request(method, path, token: token))
            let later = await api.respond(to: request(method, path, token: token))
            #expect(now?.status == status, "\(method) \(path)")
            #expect(now?.body == later.body, "\(method) \(path)")
            #expect(now?.headers["Content-Type"] == later.headers["Content-Type"])
            #expect(now?.headers["X-Request-ID"] != nil)
        }
        let needTheBroker: [(String, String)] = [
            ("POST", "/v1/environments"), ("GET", "/v1/environments"), ("GET", "/v1/environments/a"),
            ("DELETE", "/v1/environments/a"), ("POST", "/v1/environments/a/credentials"), ("GET", "/readyz"),
            ("GET", "/v2/catalog"),
        ]
        for (method, path) in needTheBroker {
            #expect(api.respondImmediately(to: request(method, path, token: "alpha")) == nil, "\(method) \(path)")
        }
        #expect(broker.attempts == 0)
    }

    @Test func aGivenRequestIDIsEchoed() async {
        var headers = HTTPHeaders([("Host", "localhost"), ("X-Request-ID", "abc-123")])
        headers.add("Authorization", "Bearer alpha")
        let response = await api.respond(to: HTTPRequest(method: "GET", path: "/healthz", headers: headers))
        #expect(response.headers["X-Request-ID"] == "abc-123")
    }

    @Test func connectionURIsEncodeCredentialsAndVhost() {
        let endpoint = AMQPEndpoint(host: "mq.internal", port: 5671)
        let body = endpoint.connection(vhost: "warren.a.b", credentials: IssuedCredentials(username: "u.1", password: "p/w+="))
        #expect(body.uri == "amqp://u.1:p%2Fw%2B%3D@mq.internal:5671/warren.a.b")
        #expect(endpoint.connection(vhost: "/").uri == "amqp://mq.internal:5671/%2F")
    }
}
