import Crypto
import EnvironmentModel
import FoundationEssentials
import HTTPServer
import Logging
import Provisioning
import Testing
@testable import WarrenAPI
import WarrenTestSupport

@Suite struct OSBPlatformStoreTests {
    static func digest(_ credentials: String) -> String { TokenStoreTests.digest(credentials) }

    @Test func parsesPlatformsTeamsDigestsAndComments() throws {
        let text = "\u{FEFF}# platforms\r\ncf-prod team-a \(Self.digest("cc:secret-a"))  # CF\r\n\r\nk8s\tteam-b\t\(Self.digest("sm:secret-b").uppercased())\r\n"
        let store = PlatformStore(entries: try PlatformStore.parse(text, source: "platforms"))
        #expect(store.platformCount == 2)
        #expect(store.platform(user: "cc", password: "secret-a")! == ("cf-prod", "team-a"))
        #expect(store.platform(user: "sm", password: "secret-b")! == ("k8s", "team-b"))
        #expect(store.platform(user: "cc", password: "secret-b") == nil)
    }

    @Test(arguments: [
        "cf team-a", "cf team-a abc", "CF team-a \(digest("x:y"))", "cf team.a \(digest("x:y"))",
        "cf team-a \(digest("x:y")) extra", "cf team-a \(String(repeating: "g", count: 64))",
        "cf team-a \(digest("x:y"))\nk8s team-b \(digest("x:y"))",
    ])
    func refusesBadLines(text: String) {
        #expect(throws: PlatformStore.LoadError.self) { try PlatformStore.parse(text, source: "platforms") }
    }

    @Test func basicAuthorization() throws {
        let store = PlatformStore(entries: try PlatformStore.parse("cf team-a \(Self.digest("cc:pa:ss"))", source: "p"))
        let encoded = Data("cc:pa:ss".utf8).base64EncodedString()
        #expect(store.platform(forAuthorization: "Basic \(encoded)")?.platform == "cf")
        #expect(store.platform(forAuthorization: "basic \(encoded)")?.team == "team-a")
        #expect(store.platform(forAuthorization: "Bearer \(encoded)") == nil)
        #expect(store.platform(forAuthorization: "Basic !!!") == nil)
        #expect(store.platform(forAuthorization: "Basic \(Data("ccpass".utf8).base64EncodedString())") == nil)
        #expect(store.platform(forAuthorization: nil) == nil)
    }
}

@Suite struct OSBProtocolTests {
    @Test(arguments: [("2.13", true), ("2.17", true), ("2.99", true), ("2.12", false), ("3.0", false), ("1.14", false),
                      ("2", false), ("2.x", false), ("", false), ("2.17.1", false), (" 2.17", false), ("2.-1", false)])
    func versionHeader(value: String, accepted: Bool) {
        let refused: Bool
        do { try OSBVersion.check(value); refused = false } catch { refused = error.status == 412 }
        #expect(refused == !accepted)
    }

    @Test func missingVersionIs412() {
        #expect(throws: OSBError.self) { try OSBVersion.check(nil) }
    }

    @Test func instanceIDsBecomeValidEnvironmentNames() {
        let guid = "0c1e7b2a-7d1f-4a52-9a3e-5f8b2c6d9e01"
        #expect(OSBNaming.environmentName(instanceID: guid) == "osb-" + guid)
        for id in ["0C1E7B2A-7D1F-4A52-9A3E-5F8B2C6D9E01", "a.b", String(repeating: "a", count: 60), "x y", "caf\u{E9}"] {
            let name = OSBNaming.environmentName(instanceID: id)
            #expect(NameRules.checkEnvironmentName(name) == nil, "\(id) -> \(name)")
            #expect(name.hasPrefix("osb-") && name.count == 36)
        }
        // Stable, and different ids give different names.
        #expect(OSBNaming.environmentName(instanceID: "A") == OSBNaming.environmentName(instanceID: "A"))
        #expect(OSBNaming.environmentName(instanceID: "A") != OSBNaming.environmentName(instanceID: "B"))
    }

    @Test func nameBasedUUIDsAreVersion5AndStable() {
        let id = NameBasedUUID.make("plan:default")
        #expect(id == NameBasedUUID.make("plan:default"))
        #expect(id != NameBasedUUID.make("plan:blueprint:default"))
        let parts = id.split(separator: "-").map(\.count)
        #expect(parts == [8, 4, 4, 4, 12])
        #expect(Array(id)[14] == "5")
        #expect("89ab".contains(Array(id)[19]))
    }

    @Test func catalogOffersADefaultPlanAndOnePerBlueprint() throws {
        let blueprints = try Blueprints(json: Array(#"{"jobs": {"description": "Jobs", "queues": [{"name": "jobs"}]}, "default": {"description": "", "queues": [{"name": "d"}]}}"#.utf8), source: "b")
        let catalog = OSBCatalog(blueprints: blueprints)
        #expect(catalog.plans.map(\.name) == ["default", "blueprint-default", "jobs"])
        #expect(Set(catalog.plans.map(\.id)).count == 3)
        let text = String(decoding: catalog.body, as: UTF8.self)
        for expected in [#""binding_rotatable":true"#, #""bindable":true"#, #""instances_retrievable":true"#,
                         #""name":"rabbitmq-environment""#, #""plan_updateable":true"#] {
            #expect(text.contains(expected), "\(expected) missing")
        }
        #expect(catalog.plan(id: catalog.plans[2].id)?.topology == .blueprint("jobs"))
    }

    @Test func bindingUsersAreEnvironmentUsersAndPasswordsAreDerived() {
        let vhost = "warren.team-a.osb-x", incarnation = "0a1b2c3d"
        let user = BindingIdentity.username(vhost: vhost, incarnation: incarnation, bindingID: "b1")
        #expect(EnvironmentNaming.isUser(user, of: vhost, incarnation: incarnation))
        #expect(user != BindingIdentity.username(vhost: vhost, incarnation: incarnation, bindingID: "b2"))
        let secret = Array(repeating: UInt8(7), count: 32)
        let password = BindingIdentity.password(secret: secret, vhost: vhost, incarnation: incarnation, bindingID: "b1")
        #expect(password == BindingIdentity.password(secret: secret, vhost: vhost, incarnation: incarnation, bindingID: "b1"))
        #expect(password != BindingIdentity.password(secret: Array(repeating: 8, count: 32), vhost: vhost, incarnation: incarnation, bindingID: "b1"))
        #expect(password != BindingIdentity.password(secret: secret, vhost: vhost, incarnation: "0a1b2c3e", bindingID: "b1"))
        #expect(password.count == 43 && password.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        // The expected HMAC, computed independently.
        let message = Array("\(vhost)\u{0}\(incarnation)\u{0}b1".utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
        let standard = Data(Array(mac)).base64EncodedString()
        #expect(password == String(standard.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 }.filter { $0 != "=" }))
    }
}

@Suite struct OSBRequestTests {
    static let catalog = OSBCatalog(blueprints: Blueprints())

    func request(_ body: String) -> HTTPRequest {
        HTTPRequest(method: "PUT", path: "/v2/service_instances/x", headers: HTTPHeaders([("Content-Type", "application/json")]), body: Array(body.utf8))
    }

    func provision(_ parameters: String, plan: String? = nil) throws(OSBError) -> OSBProvisionRequest {
        let body = #"{"service_id": "\#(OSBCatalog.serviceID)", "plan_id": "\#(plan ?? Self.catalog.plans[0].id)", "parameters": \#(parameters), "context": {"platform": "cloudfoundry"}, "organization_guid": "o", "space_guid": "s"}"#
        return try OSBProvisionRequest.decode(request(body), name: "osb-x", catalog: Self.catalog, blueprints: Blueprints())
    }

    @Test func parametersAreACreateBodyWithoutName() throws {
        let made = try provision(#"{"queue": {"type": "classic"}, "routing_key": "rk"}"#)
        #expect(made.spec.name == "osb-x")
        #expect(made.spec.queues.first?.type == .classic)
        #expect(made.spec.routingKey == "rk")
        #expect(made.context == #"{"platform":"cloudfoundry"}"#)
        #expect(try provision("{}").spec.exchange.name == "osb-x")
    }

    @Test(arguments: [
        #"{"name": "other"}"#, #"{"roles": ["producer"]}"#, #"{"blueprint": "x"}"#, #"{"queue": {"type": "fancy"}}"#,
        #"{"unknown": 1}"#, #"{"exchange": {"type": "direct", "name": "amq.x"}}"#, #""not an object""#,
        #"{"protected": true}"#,
    ])
    func badParametersAre400(parameters: String) {
        do {
            _ = try provision(parameters)
            Issue.record("accepted \(parameters)")
        } catch {
            #expect(error.status == 400 && error.error == "BadRequest")
        }
    }

    /// organization_guid and space_guid: deprecated for `context`, still required non-empty
    /// strings in v2.17.
    @Test(arguments: [
        #""space_guid": "s""#, #""organization_guid": "o""#, #""organization_guid": "", "space_guid": "s""#,
        #""organization_guid": "o", "space_guid": """#, #""organization_guid": 1, "space_guid": "s""#,
        #""organization_guid": "o", "space_guid": null"#,
    ])
    func organizationAndSpaceAreRequired(fields: String) {
        let body = #"{"service_id": "\#(OSBCatalog.serviceID)", "plan_id": "\#(Self.catalog.plans[0].id)", \#(fields)}"#
        do {
            _ = try OSBProvisionRequest.decode(request(body), name: "osb-x", catalog: Self.catalog, blueprints: Blueprints())
            Issue.record("accepted \(fields)")
        } catch {
            #expect(error.status == 400)
            #expect(error.description.contains("organization_guid") || error.description.contains("space_guid"), "\(error.description)")
        }
        let whole = #"{"service_id": "\#(OSBCatalog.serviceID)", "plan_id": "\#(Self.catalog.plans[0].id)", "organization_guid": "o", "space_guid": "s"}"#
        #expect(throws: Never.self) { try OSBProvisionRequest.decode(request(whole), name: "osb-x", catalog: Self.catalog, blueprints: Blueprints()) }
    }

    @Test func unknownPlanOrServiceIs400() {
        #expect(throws: OSBError.self) { try provision("{}", plan: "nope") }
        #expect(throws: OSBError.self) {
            try OSBProvisionRequest.decode(request(#"{"service_id": "x", "plan_id": "\#(Self.catalog.plans[0].id)"}"#), name: "osb-x", catalog: Self.catalog, blueprints: Blueprints())
        }
    }
}

@Suite struct OSBRoutingTests {
    let broker = FakeBroker(unreachable: true)

    func api(platforms: PlatformStore?) throws -> WarrenAPI {
        let path = "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))"
        FileManagerLite.write(path, "team-a \(TokenStoreTests.digest("alpha"))\n")
        let provisioner = Provisioner(admin: broker, serviceUser: "guest", logger: Logger(label: "test"))
        return WarrenAPI(
            provisioner: provisioner, tokens: try TokenStore(path: path), endpoint: AMQPEndpoint(host: "127.0.0.1", port: 5672),
            logger: Logger(label: "test"), platforms: platforms, osbSecret: Array(repeating: 1, count: 32))
    }

    func send(_ api: WarrenAPI, _ method: String, _ path: String, auth: String?, version: String? = "2.17", body: String = "") async -> HTTPResponse {
        var headers = HTTPHeaders([("Host", "localhost"), ("Content-Type", "application/json")])
        if let auth { headers.add("Authorization", auth) }
        if let version { headers.add("X-Broker-API-Version", version) }
        return await api.respond(to: HTTPRequest(method: method, path: path, headers: headers, body: Array(body.utf8)))
    }

    static let good = "Basic " + Data("cc:pw".utf8).base64EncodedString()

    @Test func withoutAPlatformsFileEveryV2RequestIs401() async throws {
        let api = try api(platforms: nil)
        for (method, path) in [("GET", "/v2/catalog"), ("PUT", "/v2/service_instances/a"), ("DELETE", "/v2/service_instances/a/service_bindings/b")] {
            let response = await send(api, method, path, auth: Self.good)
            #expect(response.status == 401)
            #expect(response.headers["WWW-Authenticate"]?.hasPrefix("Basic") == true)
            #expect(String(decoding: response.body, as: UTF8.self).contains(#""error":"Unauthorized""#))
        }
        #expect(broker.attempts == 0)
    }

    @Test func authenticationThenVersionThenValidation() async throws {
        let platforms = PlatformStore(entries: try PlatformStore.parse("cf team-a \(OSBPlatformStoreTests.digest("cc:pw"))", source: "p"))
        let api = try api(platforms: platforms)
        #expect(await send(api, "GET", "/v2/catalog", auth: "Basic " + Data("cc:wrong".utf8).base64EncodedString()).status == 401)
        #expect(await send(api, "GET", "/v2/catalog", auth: Self.good, version: nil).status == 412)
        #expect(await send(api, "GET", "/v2/catalog", auth: Self.good, version: "2.12").status == 412)
        let catalog = await send(api, "GET", "/v2/catalog", auth: Self.good)
        #expect(catalog.status == 200)
        let bad = await send(api, "PUT", "/v2/service_instances/abc", auth: Self.good, body: #"{"service_id": "nope", "plan_id": "x"}"#)
        #expect(bad.status == 400)
        #expect(String(decoding: bad.body, as: UTF8.self).contains(#""error":"BadRequest""#))
        let noQuery = await send(api, "DELETE", "/v2/service_instances/abc", auth: Self.good)
        #expect(noQuery.status == 400)
        #expect(broker.attempts == 0)
    }
}

extension OSBRoutingTests {
    /// Each path segment is decoded on its own: an encoded "/" stays inside its id, so such an
    /// id reaches the handler (here, whose body check answers) instead of matching no route.
    @Test func anEncodedSlashStaysInsideItsID() async throws {
        let platforms = PlatformStore(entries: try PlatformStore.parse("cf team-a \(OSBPlatformStoreTests.digest("cc:pw"))", source: "p"))
        let api = try api(platforms: platforms)
        let body = #"{"service_id": "\#(OSBCatalog.serviceID)", "plan_id": "\#(OSBRequestTests.catalog.plans[0].id)"}"#
        for path in ["/v2/service_instances/%C3%BCn%C3%AFc%C3%B8d%C3%A9%20id%2F1", "/v2/service_instances/a%2F..%2Fb"] {
            let response = await send(api, "PUT", path, auth: Self.good, body: body)
            #expect(response.status == 400)
            #expect(String(decoding: response.body, as: UTF8.self).contains("organization_guid is required"))
        }
        let long = await send(api, "PUT", "/v2/service_instances/" + String(repeating: "%C3%A9", count: 128), auth: Self.good, body: body)
        #expect(long.status == 400)
        #expect(String(decoding: long.body, as: UTF8.self).contains("instance id must be"))
        #expect(broker.attempts == 0)
    }
}

@Suite struct OSBSealTests {
    let secret = Array(repeating: UInt8(3), count: 32)

    func sealed(team: String = "team-a", name: String = "osb-x", platform: String = "cf", instance: String = "x") -> PlatformInstance {
        PlatformInstance(
            platform: platform, instanceID: instance, serviceID: OSBCatalog.serviceID, planID: "p",
            seal: OSBSeal.make(secret: secret, team: team, name: name, platform: platform, instanceID: instance))
    }

    @Test func holdsOnlyWhereItWasMade() {
        #expect(OSBSeal.holds(sealed(), secret: secret, team: "team-a", name: "osb-x"))
        // Copied to another environment, or another team's: it does not hold.
        #expect(!OSBSeal.holds(sealed(), secret: secret, team: "team-a", name: "osb-y"))
        #expect(!OSBSeal.holds(sealed(), secret: secret, team: "team-b", name: "osb-x"))
        // Another platform or instance id written over a sealed field: it does not hold.
        var forged = sealed()
        forged.platform = "other"
        #expect(!OSBSeal.holds(forged, secret: secret, team: "team-a", name: "osb-x"))
        forged = sealed()
        forged.instanceID = "y"
        #expect(!OSBSeal.holds(forged, secret: secret, team: "team-a", name: "osb-x"))
        // No seal, or one made with another secret.
        forged = sealed()
        forged.seal = nil
        #expect(!OSBSeal.holds(forged, secret: secret, team: "team-a", name: "osb-x"))
        #expect(!OSBSeal.holds(sealed(), secret: Array(repeating: 4, count: 32), team: "team-a", name: "osb-x"))
    }
}

/// Instance and binding ids: any a platform can send (the specification restricts neither
/// their characters nor their length) but what the record cannot hold or a log line carry.
@Suite struct OSBIdentifierTests {
    @Test(arguments: [
        "0c1e7b2a-7d1f-4a52-9a3e-5f8b2c6d9e01", "x", "with spaces", "a/b", "\u{FC}n\u{EF}c\u{F8}d\u{E9} id/1", "%41", "..", "\u{1F407}",
        String(repeating: "a", count: 255), String(repeating: "\u{E9}", count: 127), "a\u{0}b", "line\nbreak", "\u{1B}[31m",
    ])
    func takesAnyIDARecordCanHold(id: String) throws {
        #expect(try OSBNaming.checkID(id, what: "instance id") == id)
        let name = OSBNaming.environmentName(instanceID: id)
        #expect(NameRules.checkEnvironmentName(name) == nil, "\(id) -> \(name)")
    }

    @Test(arguments: [
        "", String(repeating: "a", count: 256), String(repeating: "\u{E9}", count: 128),
    ])
    func refusesEmptyOrLongerThan255Bytes(id: String) {
        do {
            _ = try OSBNaming.checkID(id, what: "binding id")
            Issue.record("accepted \(id.debugDescription)")
        } catch {
            #expect(error.status == 400 && error.description.contains("binding id"))
        }
        #expect(throws: OSBError.self) { try OSBNaming.checkID(nil, what: "binding id") }
    }

    @Test func idsAreComparedByteForByte() {
        // One accented letter, precomposed and decomposed: equal as Swift strings, two ids.
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        #expect(composed == decomposed)
        #expect(!OSBNaming.same(composed, decomposed))
        #expect(OSBNaming.environmentName(instanceID: composed) != OSBNaming.environmentName(instanceID: decomposed))
        #expect(OSBNaming.same(composed, "caf\u{E9}"))
    }
}

/// Bind bodies: service and plan required, but for a rotation, which may carry the
/// predecessor's id alone.
@Suite struct OSBBindRequestTests {
    func decode(_ body: String, bindingID: String = "b2") throws(OSBError) -> OSBBindRequest {
        try OSBBindRequest.decode(
            HTTPRequest(method: "PUT", path: "/v2/service_instances/x/service_bindings/\(bindingID)",
                        headers: HTTPHeaders([("Content-Type", "application/json")]), body: Array(body.utf8)),
            bindingID: bindingID)
    }

    static let plan = OSBRequestTests.catalog.plans[0].id

    @Test func aRotationMayCarryThePredecessorAlone() throws {
        let made = try decode(#"{"predecessor_binding_id": "b1"}"#)
        #expect(made.predecessor == "b1" && made.planID == nil && made.role == nil)
        let full = try decode(#"{"service_id": "\#(OSBCatalog.serviceID)", "plan_id": "\#(Self.plan)", "predecessor_binding_id": "\#u{FC} b/1"}"#)
        #expect(full.predecessor == "\u{FC} b/1" && full.planID == Self.plan)
    }

    @Test func aPlainBindNeedsServiceAndPlan() throws {
        let made = try decode(#"{"service_id": "\#(OSBCatalog.serviceID)", "plan_id": "\#(Self.plan)", "parameters": {"role": "producer"}}"#)
        #expect(made.planID == Self.plan && made.role == .producer && made.predecessor == nil)
        for body in [#"{"plan_id": "\#(Self.plan)"}"#, #"{"service_id": "\#(OSBCatalog.serviceID)"}"#, "{}",
                     #"{"service_id": "\#(OSBCatalog.serviceID)", "plan_id": ""}"#] {
            #expect(throws: OSBError.self, "\(body)") { try decode(body) }
        }
    }

    @Test(arguments: [
        #"{"predecessor_binding_id": ""}"#, #"{"predecessor_binding_id": null}"#, #"{"predecessor_binding_id": "b2"}"#,
        #"{"predecessor_binding_id": "\#(String(repeating: "b", count: 256))"}"#, #"{"predecessor_binding_id": "b1", "service_id": "another"}"#,
        #"{"predecessor_binding_id": "b1", "plan_id": ""}"#, #"{"predecessor_binding_id": "b1", "parameters": {"role": "admin"}}"#,
    ])
    func badRotationsAre400(body: String) {
        do {
            _ = try decode(body)
            Issue.record("accepted \(body)")
        } catch {
            #expect(error.status == 400)
        }
    }
}
