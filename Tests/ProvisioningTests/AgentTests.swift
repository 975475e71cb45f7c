@testable import BrokerState
@testable import EnvironmentModel
import FoundationEssentials
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport

/// Agent roles: topic patterns written as the regexes the broker matches routing keys with,
/// what a spec with agents may ask, how a user's role is read back from its permissions, and
/// create and rotation over the fake broker. (The broker's own enforcement is checked with a
/// real client in test_agents.py.)
@Suite struct AgentTests {
    /// AMQP's topic matching, word by word, as the reference the regexes must agree with.
    static func topicMatches(_ pattern: String, _ key: String) -> Bool {
        func match(_ p: ArraySlice<Substring>, _ k: ArraySlice<Substring>) -> Bool {
            guard let word = p.first else { return k.isEmpty }
            if word == "#" { return match(p.dropFirst(), k) || (!k.isEmpty && match(p, k.dropFirst())) }
            guard let first = k.first else { return false }
            return (word == "*" || word == first) && match(p.dropFirst(), k.dropFirst())
        }
        return match(pattern.split(separator: ".", omittingEmptySubsequences: false)[...], key.split(separator: ".", omittingEmptySubsequences: false)[...])
    }

    static let patterns = [
        "a", "a.b", "*", "#", "a.*", "*.b", "a.#", "#.b", "a.#.b", "#.a.#", "a.*.#", "#.*", "*.*.c", "a.#.#.b",
        "jobs.gpu-1:x", "a_b.*", "#.#",
    ]
    static let keys = [
        "", "a", "b", "a.b", "a.c", "a.b.b", "a.x.b", "a.x.y.b", "x.a.y", "b.a", "a.", ".a", "a..b", "x.y.c", "x.y.z.c",
        "jobs.gpu-1:x", "jobs.gpu-1-x", "a_b.q", "aXb.q", "ab", "a.bc", "ba.b",
    ]

    @Test func patternsMeanWhatAMQPTopicsMean() throws {
        for pattern in Self.patterns {
            #expect(TopicPattern.problem(pattern) == nil, "\(pattern)")
            let regex = try Regex(TopicPattern.regex(anyOf: [pattern]))
            for key in Self.keys {
                #expect((key.firstMatch(of: regex) != nil) == Self.topicMatches(pattern, key), "pattern \(pattern), key \(key)")
            }
        }
    }

    @Test func severalPatternsMatchWhatAnyOfThemMatches() throws {
        let regex = try Regex(TopicPattern.regex(anyOf: ["a.*", "#.c"]))
        for key in Self.keys {
            #expect((key.firstMatch(of: regex) != nil) == (Self.topicMatches("a.*", key) || Self.topicMatches("#.c", key)), "\(key)")
        }
    }

    @Test func literalCharactersOfAPatternAreNotRegexSyntax() throws {
        // "." between words is the separator, never "any character"; "-" and ":" are literal.
        let regex = try Regex(TopicPattern.regex(anyOf: ["a.b"]))
        #expect("aXb".firstMatch(of: regex) == nil)
        #expect("a.b".firstMatch(of: regex) != nil)
    }

    @Test func patternsThatCouldCostTheBrokerOrMeanNothingAreRefused() {
        #expect(TopicPattern.problem("") != nil)
        #expect(TopicPattern.problem("a*.b") != nil)
        #expect(TopicPattern.problem("a.b#") != nil)
        #expect(TopicPattern.problem("a.(b)") != nil)
        #expect(TopicPattern.problem("#.a.#.b.#") != nil, "three multi-word wildcards")
        #expect(TopicPattern.problem("#.#.a.#") == nil, "a run of # is one")
        #expect(TopicPattern.problem(String(repeating: "a", count: 256)) != nil)
    }

    var topicSpec: EnvironmentSpec {
        var spec = EnvironmentSpec(
            name: "crew", exchange: .init(name: "crew", type: .topic),
            queues: [.init(name: "plans"), .init(name: "results", deadLetter: true)],
            bindings: [.init(queue: "plans", routingKey: "plans.#"), .init(queue: "results", routingKey: "results.#")])
        spec.agents = [
            .init(name: "planner", publish: ["plans.*"], consume: ["results"]),
            .init(name: "worker", publish: ["results.#"], consume: ["plans"]),
            .init(name: "auditor", consume: ["results.dlq"]),
        ]
        return spec
    }

    @Test func aValidCrewHasNoProblems() {
        #expect(topicSpec.validate().isEmpty)
    }

    @Test func whatAnAgentMayNotAskIsNamedByField() {
        var spec = topicSpec
        spec.agents = [
            .init(name: "producer", consume: ["plans"]),
            .init(name: "Planner", consume: ["plans"]),
            .init(name: "idle"),
            .init(name: "reader", consume: ["elsewhere"]),
            .init(name: "sloppy", publish: ["a*"]),
            .init(name: "reader", consume: ["plans"]),
        ]
        let fields = Set(spec.validate().map(\.field))
        #expect(fields == ["agents[0].name", "agents[1].name", "agents[2]", "agents[3].consume[0]", "agents[4].publish[0]", "agents[5].name"])

        var direct = topicSpec
        direct.exchange.type = .direct
        #expect(direct.validate().map(\.field) == ["agents[0].publish", "agents[1].publish"])

        var crowd = topicSpec
        crowd.agents = (0...EnvironmentSpec.Agent.maxCount).map { .init(name: "a\($0)", consume: ["plans"]) }
        #expect(crowd.validate().map(\.field) == ["agents"])
    }

    @Test func anAgentsPermissionsAreNarrowAndSayWhoItIs() throws {
        let spec = topicSpec
        let planner = Role.agent("planner").permissions(for: spec)
        #expect(planner.configure == "^$")
        #expect(planner.read == "^(results)$")
        #expect(planner.topic == Role.TopicPermission(exchange: "crew", write: TopicPattern.regex(anyOf: ["plans.*"])))
        // The mark matches no exchange; the exchange alternative matches only "crew".
        let write = try Regex(planner.write)
        #expect("crew".firstMatch(of: write) != nil)
        for name in ["amq.default", "crew.dlx", "agent:planner", "", "results"] { #expect(name.firstMatch(of: write) == nil, "\(name)") }

        let auditor = Role.agent("auditor").permissions(for: spec)
        #expect(auditor.topic == nil)
        for name in ["crew", "amq.default", ""] { #expect(name.firstMatch(of: try Regex(auditor.write)) == nil, "\(name)") }

        for role in Role.builtIn + ["planner", "worker", "auditor"].map(Role.agent) {
            let permissions = role.permissions(for: spec)
            let info = PermissionInfo(user: "u", vhost: "v", configure: permissions.configure, write: permissions.write, read: permissions.read)
            #expect(Role.of(info) == role)
        }
    }

    @Test func aSpecWithoutAgentsEncodesAsBefore() throws {
        let json = String(decoding: try JSONEncoder().encode(EnvironmentSpec(name: "plain")), as: UTF8.self)
        #expect(!json.contains("agents"))
        let decoded = try JSONDecoder().decode(EnvironmentSpec.self, from: try JSONEncoder().encode(topicSpec))
        #expect(decoded.agents == topicSpec.agents)
    }

    let broker = FakeBroker()
    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }

    @Test func createIssuesEachAgentItsUserAndRotationRevokesOnlyItsOwn() async throws {
        let spec = topicSpec
        let roles: [Role] = [.full] + spec.agents.map { .agent($0.name) }
        let created = try await provisioner.create(team: "team-a", spec: spec, roles: roles)
        #expect(created.credentials.map(\.role) == roles)
        let vhost = created.environment.vhost
        let planner = try #require(created.credentials.first { $0.role == .agent("planner") })
        let worker = try #require(created.credentials.first { $0.role == .agent("worker") })
        broker.state.withLock { state in
            #expect(state.topicGrants["\(vhost)/\(planner.username)/crew"] == TopicPattern.regex(anyOf: ["plans.*"]))
            #expect(state.topicGrants.keys.filter { $0.hasPrefix("\(vhost)/") }.count == 2, "the auditor publishes nothing")
        }

        let before = broker.calls.count
        let rotated = try #require(
            try await provisioner.issueCredentials(team: "team-a", name: "crew", role: .agent("planner"), revokeOthersAfter: .zero))
        // The routing keys before the permissions: a user stopped between the two cannot log
        // in, rather than publish every key.
        let made = Array(broker.calls[before...])
        let topic = try #require(made.firstIndex(of: "PUT topic permissions"))
        let granted = try #require(made.firstIndex(of: "PUT permissions"))
        #expect(topic < granted, "\(made)")
        #expect(rotated.credentials.role == .agent("planner"))
        let users = try await broker.permissions(vhost: vhost)
        #expect(!users.contains { $0.user == planner.username }, "the planner's old user is revoked")
        #expect(users.contains { $0.user == worker.username }, "another agent's user is not")
        #expect(users.contains { $0.user == rotated.credentials.username && Role.of($0) == .agent("planner") })

        await #expect(throws: ProvisioningError.self) {
            do {
                _ = try await provisioner.issueCredentials(team: "team-a", name: "crew", role: .agent("stranger"), revokeOthersAfter: nil)
            } catch let error as ProvisioningError {
                #expect(error.code == .invalidField)
                #expect(error.fields == ["role"])
                throw error
            }
        }
    }
}
