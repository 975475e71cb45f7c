import EnvironmentModel
import HTTPServer
import Logging
import Provisioning
import Testing
@testable import WarrenAPI
import WarrenTestSupport
import WireFormat

/// The /v1/environments routes end to end in process: requests through `respond(to:)`, a real
/// `Provisioner`, and the shared `FakeBroker` beneath, so a success path is checked on the
/// answer's status and body and on what the broker holds afterwards (the Python suite checks the
/// same against a real broker, but only where one runs).
@Suite struct EnvironmentRoutesTests {
    let broker = FakeBroker()
    let api: WarrenAPI
    static let vhost = "warren.team-a.fraud-scoring"

    init() throws {
        let path = "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))"
        FileManagerLite.write(path, "team-a \(TokenStoreTests.digest("alpha"))\nteam-b \(TokenStoreTests.digest("beta"))\n")
        // "warren-admin": the fake checks the service user's own permissions where RabbitMQ does.
        let provisioner = Provisioner(
            admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
        api = WarrenAPI(
            provisioner: provisioner, tokens: try TokenStore(path: path),
            endpoint: AMQPEndpoint(host: "mq.internal", port: 5672), logger: Logger(label: "test"))
    }

    func send(_ method: String, _ target: String, token: String = "alpha", body: String = "") async -> HTTPResponse {
        var headers = HTTPHeaders([("Host", "localhost"), ("Authorization", "Bearer \(token)")])
        if !body.isEmpty { headers.add("Content-Type", "application/json") }
        let parts = target.split(separator: "?", maxSplits: 1).map(String.init)
        return await api.respond(to: HTTPRequest(
            method: method, path: parts[0], query: parts.count > 1 ? parts[1] : nil, headers: headers, body: Array(body.utf8)))
    }

    /// The items of a JSON array (none when it is not one).
    func items(_ value: JSONValue?) -> [JSONValue] {
        if case .array(let items)? = value { return items }
        return []
    }

    /// The body as JSON (null when it is none, which fails whatever is asked of it).
    func json(_ response: HTTPResponse) -> JSONValue {
        (try? StrictJSON.parse(response.body)) ?? .null
    }

    /// POST of the environment every test starts from; its answer's body.
    func create() async throws -> JSONValue {
        let response = await send("POST", "/v1/environments", body: #"{"name":"fraud-scoring"}"#)
        try #require(response.status == 201, "\(String(decoding: response.body, as: UTF8.self))")
        return json(response)
    }

    func users(of vhost: String) -> Set<String> {
        broker.state.withLock { Set($0.users.keys.filter { $0.hasPrefix(vhost + ".") }) }
    }

    @Test func createIs201WithCredentialsAndLocation() async throws {
        let response = await send("POST", "/v1/environments", body: #"{"name":"fraud-scoring"}"#)
        #expect(response.status == 201)
        #expect(response.headers["Location"] == "/v1/environments/fraud-scoring")
        #expect(response.headers["Cache-Control"] == "no-store")
        let body = json(response)
        #expect(body["id"] == "fraud-scoring")
        #expect(body["team"] == "team-a")
        #expect(body["vhost"] == .string(Self.vhost))
        #expect(body["status"] == "ready")
        let username = try #require(body["credentials"]?["username"]?.stringValue)
        let password = try #require(body["credentials"]?["password"]?.stringValue)
        #expect(password.count >= 32)
        #expect(body["credentials"]?["role"] == "full")
        #expect(body["connection"]?["uri"]?.stringValue?.hasPrefix("amqp://\(username):") == true)
        // Made on the broker: the vhost, the user (only a hash of its password), the topology.
        #expect(users(of: Self.vhost) == [username])
        broker.state.withLock { state in
            #expect(state.vhosts[Self.vhost] != nil)
            #expect(state.users[username].map { !$0.isEmpty && !$0.contains(password) } == true)
            #expect(state.permissions[Self.vhost]?.contains(username) == true)
            #expect(state.exchanges["\(Self.vhost)/fraud-scoring"] != nil)
            #expect(state.queues["\(Self.vhost)/fraud-scoring"] != nil)
        }
        #expect(broker.indexed(team: "team-a") == ["fraud-scoring"])
    }

    @Test func getAndListShowTheSpecAsCreated() async throws {
        let created = try await create()
        let response = await send("GET", "/v1/environments/fraud-scoring")
        #expect(response.status == 200)
        let body = json(response)
        #expect(body["id"] == "fraud-scoring")
        #expect(body["status"] == "ready")
        for field in ["vhost", "exchange", "queues", "bindings", "limits", "queue", "routing_key"] {
            #expect(body[field] != nil && body[field] == created[field], "\(field)")
        }
        // A GET never shows a password.
        #expect(body["credentials"] == nil)

        let list = await send("GET", "/v1/environments")
        #expect(list.status == 200)
        guard case .array(let items)? = json(list)["items"] else { Issue.record("no items"); return }
        #expect(items.map { $0["id"] } == ["fraud-scoring"])
        #expect(items.first?["queues"] == created["queues"])
    }

    @Test func patchAddsAQueue() async throws {
        _ = try await create()
        let response = await send("PATCH", "/v1/environments/fraud-scoring", body: #"{"queues":[{"name":"audit"}]}"#)
        #expect(response.status == 200)
        guard case .array(let queues)? = json(response)["queues"] else { Issue.record("no queues"); return }
        #expect(Set(queues.compactMap { $0["name"]?.stringValue }) == ["fraud-scoring", "audit"])
        #expect(broker.state.withLock { $0.queues["\(Self.vhost)/audit"] } != nil)
        // And it stays: the record holds the new spec.
        guard case .array(let after)? = json(await send("GET", "/v1/environments/fraud-scoring"))["queues"] else {
            Issue.record("no queues"); return
        }
        #expect(after == queues)
    }

    @Test func postCredentialsIssuesANewUser() async throws {
        let first = try #require(try await create()["credentials"]?["username"]?.stringValue)
        let response = await send("POST", "/v1/environments/fraud-scoring/credentials")
        #expect(response.status == 201)
        #expect(response.headers["Cache-Control"] == "no-store")
        let body = json(response)
        let second = try #require(body["credentials"]?["username"]?.stringValue)
        #expect(second != first)
        #expect(body["credentials"]?["password"]?.stringValue?.count ?? 0 >= 32)
        #expect(body["connection"]?["vhost"] == .string(Self.vhost))
        // The old user keeps working: both are on the broker, both with permissions.
        #expect(users(of: Self.vhost) == [first, second])
        #expect(broker.state.withLock { $0.permissions[Self.vhost] ?? [] }.isSuperset(of: [first, second]))
    }

    /// A protected environment: every DELETE is 409 `protected` (force too) and changes
    /// nothing; every answer shows `protected`; a PATCH of `protected` alone sets and lifts it;
    /// on 3.10 (the fake's release) a note says Warren alone enforces it.
    @Test func aProtectedEnvironmentIsNotDeletedUntilAPatchLiftsIt() async throws {
        let created = try await create()
        #expect(created["protected"] == false)
        let patched = await send("PATCH", "/v1/environments/fraud-scoring", body: #"{"protected":true}"#)
        #expect(patched.status == 200)
        #expect(json(patched)["protected"] == true)
        let before = broker.state.withLock { ($0.vhosts, $0.users) }
        for path in ["/v1/environments/fraud-scoring", "/v1/environments/fraud-scoring?force=true"] {
            let refused = await send("DELETE", path)
            #expect(refused.status == 409)
            #expect(refused.headers["Content-Type"] == "application/problem+json")
            #expect(json(refused)["type"] == "urn:warren:problem:protected")
            #expect(json(refused)["detail"]?.stringValue?.contains(#"{"protected": false}"#) == true)
        }
        #expect(broker.state.withLock { ($0.vhosts, $0.users) } == before)
        let shown = json(await send("GET", "/v1/environments/fraud-scoring"))
        #expect(shown["protected"] == true)
        #expect(items(shown["notes"]).contains { $0.stringValue?.hasPrefix("protected by Warren alone") == true })
        #expect(items(json(await send("GET", "/v1/environments"))["items"]).first?["protected"] == true)
        // A repeated create that differs only in protection is a conflict naming it.
        let again = await send("POST", "/v1/environments", body: #"{"name":"fraud-scoring"}"#)
        #expect(again.status == 409)
        #expect(items(json(again)["errors"]).map { $0["field"] } == ["protected"])
        #expect(await send("POST", "/v1/environments", body: #"{"name":"fraud-scoring","protected":true}"#).status == 200)

        #expect(await send("PATCH", "/v1/environments/fraud-scoring", body: #"{"protected":"no"}"#).status == 400)
        let lifted = await send("PATCH", "/v1/environments/fraud-scoring", body: #"{"protected":false}"#)
        #expect(json(lifted)["protected"] == false)
        #expect(json(lifted)["notes"] == nil)
        #expect(await send("DELETE", "/v1/environments/fraud-scoring").status == 204)
    }

    @Test func deleteIs204AndLeavesNothingOnTheBroker() async throws {
        _ = try await create()
        _ = await send("POST", "/v1/environments/fraud-scoring/credentials")
        #expect(users(of: Self.vhost).count == 2)
        let response = await send("DELETE", "/v1/environments/fraud-scoring")
        #expect(response.status == 204)
        #expect(response.body.isEmpty)
        #expect(broker.holdsNothing(of: Self.vhost))
        #expect(users(of: Self.vhost).isEmpty)
        #expect(await send("GET", "/v1/environments/fraud-scoring").status == 404)
    }

    @Test func anotherTeamFindsNothingOfTheFirstTeams() async throws {
        _ = try await create()
        let calls: [(String, String, String)] = [
            ("GET", "/v1/environments/fraud-scoring", ""),
            ("PATCH", "/v1/environments/fraud-scoring", #"{"queues":[{"name":"audit"}]}"#),
            ("POST", "/v1/environments/fraud-scoring/credentials", ""),
            ("DELETE", "/v1/environments/fraud-scoring", ""),
        ]
        for (method, path, body) in calls {
            let response = await send(method, path, token: "beta", body: body)
            #expect(response.status == 404, "\(method) \(path)")
            #expect(response.headers["Content-Type"] == "application/problem+json")
        }
        guard case .array(let items)? = json(await send("GET", "/v1/environments", token: "beta"))["items"] else {
            Issue.record("no items"); return
        }
        #expect(items.isEmpty)
        // The first team's environment is as it was: one user, no new queue, still there.
        #expect(users(of: Self.vhost).count == 1)
        #expect(broker.state.withLock { $0.queues["\(Self.vhost)/audit"] } == nil)
        #expect(await send("GET", "/v1/environments/fraud-scoring").status == 200)
    }

    @Test(arguments: [
        #"{"name":"Fraud"}"#,
        #"{"name":"fraud-scoring","queues":[{"name":"q","type":"lazy"}]}"#,
        #"{"name":"fraud-scoring","colour":"blue"}"#,
        #"{"name":"fraud-scoring""#,
    ])
    func aBadBodyIs400AndMakesNothing(body: String) async {
        let response = await send("POST", "/v1/environments", body: body)
        #expect(response.status == 400)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        #expect(json(response)["status"] == 400)
        // Refused before the broker: not a call, let alone a vhost or a user.
        #expect(broker.calls.isEmpty)
        broker.state.withLock { state in
            #expect(state.vhosts.isEmpty)
            #expect(state.users.isEmpty)
        }
    }
}
