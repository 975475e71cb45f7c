import EnvironmentModel
import HTTPServer
import Logging
import Provisioning
import Testing
@testable import WarrenAPI
import WarrenTestSupport

@Suite struct RoutingTests {
    /// Never reachable, and counts who tried: a request refused before the broker leaves it at zero.
    let broker = FakeBroker(unreachable: true)
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
