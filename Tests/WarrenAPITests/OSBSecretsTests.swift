@testable import BrokerState
@testable import EnvironmentModel
@testable import Provisioning
import Testing
@testable import WarrenAPI

/// A secret rotation (WARREN_OSB_PREVIOUS_SECRET_FILE): what the previous secret sealed and
/// derived is recognised, new seals use the current one, and what neither made is told apart.
@Suite struct OSBSecretsTests {
    let old = Array(repeating: UInt8(ascii: "o"), count: 32)
    let new = Array(repeating: UInt8(ascii: "n"), count: 32)
    let lost = Array(repeating: UInt8(ascii: "l"), count: 32)

    func instance(sealedWith secret: [UInt8]) -> PlatformInstance {
        PlatformInstance(platform: "cf", instanceID: "i-1", serviceID: "s", planID: "p",
                         seal: OSBSeal.make(secret: secret, team: "team-a", name: "osb-i-1", platform: "cf", instanceID: "i-1"))
    }

    @Test func aSealIsJudgedByTheSecretThatMadeIt() {
        let rotating = OSBSecrets(current: new, previous: old)
        #expect(rotating.verdict(instance(sealedWith: new), team: "team-a", name: "osb-i-1") == .current)
        #expect(rotating.verdict(instance(sealedWith: old), team: "team-a", name: "osb-i-1") == .previous)
        #expect(rotating.verdict(instance(sealedWith: lost), team: "team-a", name: "osb-i-1") == .neither)
        // Without a rotation declared, the old secret's seal is one that does not verify.
        #expect(OSBSecrets(current: new).verdict(instance(sealedWith: old), team: "team-a", name: "osb-i-1") == .neither)
        // A seal holds only for the team and name it was made for.
        #expect(rotating.verdict(instance(sealedWith: new), team: "team-b", name: "osb-i-1") == .neither)
        // New seals are the current secret's.
        let sealed = PlatformInstance(platform: "cf", instanceID: "i-1", serviceID: "s", planID: "p",
                                      seal: rotating.seal(team: "team-a", name: "osb-i-1", platform: "cf", instanceID: "i-1"))
        #expect(OSBSecrets(current: new).verdict(sealed, team: "team-a", name: "osb-i-1") == .current)
    }

    @Test func aBindingIsAnsweredWithThePasswordTheBrokerHolds() throws {
        let environment = PlatformEnvironment(
            environment: Environment(team: "team-a", vhost: "warren.team-a.osb-i-1", spec: EnvironmentSpec(name: "osb-i-1"), createdAt: "now"),
            platform: instance(sealedWith: old), state: .ready, failureReason: nil, incarnation: "0123abcd")
        let madeWithOld = BindingIdentity.password(secret: old, vhost: environment.environment.vhost, incarnation: "0123abcd", bindingID: "b1")
        let stored = StoredPassword(of: madeWithOld)

        let rotating = OSBSecrets(current: new, previous: old)
        let answered = try #require(rotating.bindingCredentials(environment: environment, bindingID: "b1", role: .full, stored: stored))
        #expect(answered.password == madeWithOld)
        #expect(answered.username == BindingIdentity.username(vhost: environment.environment.vhost, incarnation: "0123abcd", bindingID: "b1"))
        // The rotation over, or a secret that never made it: no password rather than a wrong one.
        #expect(OSBSecrets(current: new).bindingCredentials(environment: environment, bindingID: "b1", role: .full, stored: stored) == nil)
        #expect(OSBSecrets(current: lost, previous: new).bindingCredentials(environment: environment, bindingID: "b1", role: .full, stored: stored) == nil)
    }
}
