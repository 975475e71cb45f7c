import EnvironmentModel
import FoundationEssentials
import HTTPServer
import Logging
import Provisioning
import Testing
@testable import WarrenAPI
import WarrenTestSupport

/// Two `Authorization` header fields: 400 on /v1 (a problem) and /v2 (an OSB error), before
/// either is looked up, with the same body whichever values they carry.
@Suite struct DuplicateAuthorizationTests {
    let broker = FakeBroker(unreachable: true)
    let api: WarrenAPI

    static let bearer = "Bearer alpha"
    static let basic = "Basic " + Data("cc:pw".utf8).base64EncodedString()

    init() throws {
        let path = "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))"
        FileManagerLite.write(path, "team-a \(TokenStoreTests.digest("alpha"))\n")
        let platforms = PlatformStore(entries: try PlatformStore.parse("cf team-a \(TokenStoreTests.digest("cc:pw"))", source: "p"))
        let provisioner = Provisioner(admin: broker, serviceUser: "guest", logger: Logger(label: "test"))
        api = WarrenAPI(
            provisioner: provisioner, tokens: try TokenStore(path: path), endpoint: AMQPEndpoint(host: "127.0.0.1", port: 5672),
            logger: Logger(label: "test"), platforms: platforms, osbSecret: Array(repeating: 1, count: 32))
    }

    func send(_ method: String, _ path: String, _ authorizations: [(String, String)]) async -> HTTPResponse {
        var headers = HTTPHeaders([("Host", "localhost"), ("X-Broker-API-Version", "2.17")])
        for (name, value) in authorizations { headers.add(name, value) }
        return await api.respond(to: HTTPRequest(method: method, path: path, headers: headers, body: []))
    }

    /// Good and bad values in either order, and the names in another case: the same 400.
    static let pairs: [[(String, String)]] = [
        [("Authorization", bearer), ("Authorization", bearer)],
        [("Authorization", bearer), ("Authorization", "Bearer wrong")],
        [("Authorization", "Bearer wrong"), ("authorization", bearer)],
        [("AUTHORIZATION", basic), ("Authorization", basic), ("Authorization", "")],
        [("Authorization", basic), ("Authorization", bearer)],
    ]

    @Test func v1AnswersAProblem400() async {
        var bodies: Set<[UInt8]> = []
        for pair in Self.pairs {
            for path in ["/v1/environments", "/v1/blueprints"] {
                let response = await send("GET", path, pair)
                #expect(response.status == 400, "\(path) \(pair)")
                #expect(response.headers["Content-Type"] == "application/problem+json")
                #expect(response.headers["WWW-Authenticate"] == nil)
                bodies.insert(response.body)
            }
        }
        #expect(bodies.count == 1)
        #expect(String(decoding: bodies.first ?? [], as: UTF8.self).contains("urn:warren:problem:duplicate-authorization"))
        // One header of the same values is still authenticated (the control).
        #expect(await send("GET", "/v1/blueprints", [("Authorization", Self.bearer)]).status == 200)
        #expect(await send("GET", "/v1/blueprints", [("Authorization", "Bearer wrong")]).status == 401)
        #expect(broker.attempts == 0)
    }

    @Test func v2AnswersAnOSBError400() async {
        var bodies: Set<[UInt8]> = []
        for pair in Self.pairs {
            let response = await send("GET", "/v2/catalog", pair)
            #expect(response.status == 400, "\(pair)")
            #expect(response.headers["WWW-Authenticate"] == nil)
            bodies.insert(response.body)
        }
        #expect(bodies.count == 1)
        #expect(String(decoding: bodies.first ?? [], as: UTF8.self).contains(#""error":"BadRequest""#))
        #expect(await send("GET", "/v2/catalog", [("Authorization", Self.basic)]).status == 200)
        #expect(await send("GET", "/v2/catalog", [("Authorization", "Basic d3Jvbmc6d3Jvbmc=")]).status == 401)
        #expect(broker.attempts == 0)
    }

    /// Routes without authentication do not look at the header at all.
    @Test func healthzIgnoresIt() async {
        #expect(await send("GET", "/healthz", Self.pairs[1]).status == 200)
    }
}
