import EnvironmentModel
import Provisioning
import Testing
@testable import WarrenAPI

/// A blueprint with `ceilings` is a tier: what it sets over the global ceilings, what it may
/// not set, and the create it makes checked against its own.
@Suite struct BlueprintTierTests {
    @Test func ceilingsGivenOverTheGlobalOnes() throws {
        let blueprints = try Blueprints(json: Array(#"""
            {"gpu": {"description": "", "queues": [{"name": "jobs"}], "ceilings": {"connections": 500, "users": 40}},
             "plain": {"description": "", "queues": [{"name": "jobs"}]}}
            """#.utf8), source: "b")
        let global = Ceilings()
        let gpu = try #require(blueprints["gpu"]?.ceilings(over: global))
        #expect(gpu.connections == 500 && gpu.users == 40)
        #expect(gpu.queues == global.queues && gpu.rotationsPerMinute == global.rotationsPerMinute)
        #expect(blueprints["plain"]?.ceilings(over: global) == nil)
    }

    @Test(arguments: [
        #"{"rotations_per_minute": 5}"#,  // per team, not per tier
        #"{"connections": 0}"#,
        #"{"users": 2}"#,
        #"{"connection": 5}"#,
        #"{"connections": "5"}"#,
    ])
    func badCeilingsStopTheFile(ceilings: String) {
        #expect(throws: Blueprints.LoadError.self) {
            try Blueprints(json: Array(#"{"gpu": {"description": "", "queues": [{"name": "j"}], "ceilings": \#(ceilings)}}"#.utf8), source: "b")
        }
    }

    @Test func aTiersCreateIsCheckedAgainstItsCeilings() throws {
        let blueprints = try Blueprints(json: Array(#"""
            {"gpu": {"description": "", "queues": [{"name": "jobs"}], "limits": {"max_connections": 300}}}
            """#.utf8), source: "b")
        var gpu = Ceilings()
        gpu.connections = 500
        let body = Array(#"{"name": "a", "blueprint": "gpu"}"#.utf8)
        let request = try CreateEnvironmentRequest.decode(body, blueprints: blueprints, tiers: ["gpu": gpu])
        #expect(request.tier == "gpu")
        // Without its tier, the same blueprint asks for more than the global ceiling.
        #expect(throws: Problem.self) { try CreateEnvironmentRequest.decode(body, blueprints: blueprints) }
    }
}
