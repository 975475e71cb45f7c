@testable import BrokerState
@testable import EnvironmentModel
@testable import Provisioning
import Testing

@Suite struct NamingTests {
    @Test(arguments: ["a", "fraud-scoring", "0day", String(repeating: "a", count: 63)])
    func validEnvironmentNames(name: String) {
        #expect(NameRules.checkEnvironmentName(name) == nil)
    }

    @Test(arguments: ["", "-a", "A", "a_b", "a.b", "a/b", "..", ".", "é", "a b", "%2F", String(repeating: "a", count: 64)])
    func invalidEnvironmentNames(name: String) {
        #expect(NameRules.checkEnvironmentName(name) != nil)
    }

    @Test(arguments: ["jobs", "Jobs.v1", "a:b_c-d", String(repeating: "q", count: 255)])
    func validResourceNames(name: String) {
        #expect(NameRules.checkResourceName(name) == nil)
    }

    @Test(arguments: ["", "amq.direct", "a/b", "a b", "é", "a#", String(repeating: "q", count: 256)])
    func invalidResourceNames(name: String) {
        #expect(NameRules.checkResourceName(name) != nil)
    }

    @Test(arguments: ["", "jobs", "jobs.*.high", "logs.#"])
    func validRoutingKeys(key: String) {
        #expect(NameRules.checkRoutingKey(key) == nil)
    }

    @Test(arguments: ["a b", "a/b", "é", String(repeating: "k", count: 256)])
    func invalidRoutingKeys(key: String) {
        #expect(NameRules.checkRoutingKey(key) != nil)
    }

    @Test func vhostsParseBackToTeamAndName() throws {
        let vhost = EnvironmentNaming.vhost(team: "team-a", name: "fraud-scoring")
        #expect(vhost == "warren.team-a.fraud-scoring")
        let parsed = try #require(EnvironmentNaming.parse(vhost: vhost))
        #expect(parsed.team == "team-a" && parsed.name == "fraud-scoring")
        #expect(EnvironmentNaming.parse(vhost: "/") == nil)
        #expect(EnvironmentNaming.parse(vhost: "warren.a.b.c") == nil)
    }

    @Test func userNamesBelongToExactlyOneEnvironmentAndIncarnation() {
        let vhost = "warren.team-a.jobs"
        let incarnation = EnvironmentNaming.newIncarnation()
        let user = EnvironmentNaming.newUserName(vhost: vhost, incarnation: incarnation)
        #expect(EnvironmentNaming.isUser(user, of: vhost))
        #expect(EnvironmentNaming.isUser(user, of: vhost, incarnation: incarnation))
        #expect(!EnvironmentNaming.isUser(user, of: vhost, incarnation: EnvironmentNaming.newIncarnation()))
        #expect(!EnvironmentNaming.isUser(user, of: vhost, incarnation: ""))
        #expect(EnvironmentNaming.vhost(ofUser: user) == vhost)
        #expect(!EnvironmentNaming.isUser(user, of: "warren.team-a.job"))
        #expect(!EnvironmentNaming.isUser("warren.team-a.jobs-2.0000abcd", of: vhost))
        #expect(!EnvironmentNaming.isUser("warren.team-a.jobs.guest", of: vhost))
        #expect(!EnvironmentNaming.isUser("guest", of: vhost))
        // Names from before incarnations: 8 hex digits, and only for a record without one.
        #expect(EnvironmentNaming.isUser("warren.team-a.jobs.0000abcd", of: vhost, incarnation: ""))
        #expect(!EnvironmentNaming.isUser("warren.team-a.jobs.0000abcd", of: vhost, incarnation: incarnation))
        #expect(EnvironmentNaming.newUserName(vhost: vhost, incarnation: incarnation) != user)
        // Warren's own vhost is no environment's.
        #expect(EnvironmentNaming.parse(vhost: EnvironmentNaming.systemVhost) == nil)
    }

    /// A record is trusted only where it was found: a forged one naming another team, another
    /// environment, an empty spec or a user of someone else is refused, whatever else it says.
    @Test func recordsAreValidatedAgainstTheirVhost() {
        let vhost = "warren.team-a.jobs"
        let good = EnvironmentRecord(team: "team-a", spec: EnvironmentSpec(name: "jobs"), createdAt: EnvironmentRecord.now())
        #expect(good.problem(in: vhost) == nil)
        #expect(good.problem(in: "warren.team-b.jobs") != nil)
        #expect(good.problem(in: "warren.team-a.other") != nil)
        var empty = good
        empty.spec.queues = []
        empty.spec.bindings = []
        #expect(empty.problem(in: vhost) != nil)
        var foreignUser = good
        foreignUser.revocations = ["guest": EnvironmentRecord.now()]
        #expect(foreignUser.problem(in: vhost) != nil)
        var otherEnvironmentsUser = good
        otherEnvironmentsUser.revocations = ["warren.team-b.jobs.\(good.incarnation)0000abcd": EnvironmentRecord.now()]
        #expect(otherEnvironmentsUser.problem(in: vhost) != nil)
        var ownUser = good
        ownUser.revocations = ["\(vhost).\(good.incarnation)0000abcd": EnvironmentRecord.now()]
        #expect(ownUser.problem(in: vhost) == nil)
        var badIncarnation = good
        badIncarnation.incarnation = "../x"
        #expect(badIncarnation.problem(in: vhost) != nil)
    }

    @Test func specDifferencesNameTheFields() {
        let a = EnvironmentSpec(name: "x")
        var b = a
        b.exchange.type = .topic
        #expect(a.differences(from: b) == ["exchange.type"])
        #expect(a.differences(from: a).isEmpty)
    }

    @Test func passwordsAreLongAndDistinct() {
        let passwords = (0..<100).map { _ in PasswordGenerator.make() }
        #expect(Set(passwords).count == 100)
        #expect(passwords.allSatisfy { $0.count == 32 })
    }
}
