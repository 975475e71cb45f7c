import Provisioning
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

    @Test func userNamesBelongToExactlyOneEnvironment() {
        let vhost = "warren.team-a.jobs"
        let user = EnvironmentNaming.newUserName(vhost: vhost)
        #expect(EnvironmentNaming.isUser(user, of: vhost))
        #expect(!EnvironmentNaming.isUser(user, of: "warren.team-a.job"))
        #expect(!EnvironmentNaming.isUser("warren.team-a.jobs-2.0000abcd", of: vhost))
        #expect(!EnvironmentNaming.isUser("warren.team-a.jobs.guest", of: vhost))
        #expect(EnvironmentNaming.newUserName(vhost: vhost) != user)
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
