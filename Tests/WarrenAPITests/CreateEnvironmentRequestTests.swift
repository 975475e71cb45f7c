import Provisioning
import Testing
@testable import WarrenAPI
import WireFormat

@Suite struct CreateEnvironmentRequestTests {
    func decode(_ json: String) throws(Problem) -> EnvironmentSpec {
        try CreateEnvironmentRequest.decode(Array(json.utf8)).spec
    }

    @Test func defaultsFollowTheOriginalDesign() throws {
        let spec = try decode(#"{"name":"fraud-scoring"}"#)
        #expect(spec.exchange == .init(name: "fraud-scoring", type: .direct))
        #expect(spec.queue == .init(name: "fraud-scoring", type: .quorum))
        #expect(spec.routingKey == "fraud-scoring")
    }

    @Test func everyOptionalField() throws {
        let spec = try decode(#"{"name":"a","exchange":{"name":"jobs.x","type":"topic"},"queue":{"name":"jobs","type":"classic"},"routing_key":"jobs.#"}"#)
        #expect(spec.exchange == .init(name: "jobs.x", type: .topic))
        #expect(spec.queue == .init(name: "jobs", type: .classic))
        #expect(spec.routingKey == "jobs.#")
    }

    @Test(arguments: ["", "{", "nul", "[1,2]", "\"name\"", "42", "{\"name\":\"a\",}"])
    func malformedBodies(json: String) {
        let problem = #expect(throws: Problem.self) { try decode(json) }
        #expect(problem?.status == 400)
        #expect(problem?.slug == "malformed-json")
    }

    @Test(arguments: [
        (#"{}"#, "name"),
        (#"{"name":null}"#, "name"),
        (#"{"name":42}"#, "name"),
        (#"{"name":"Upper"}"#, "name"),
        (#"{"name":"a/b"}"#, "name"),
        (#"{"name":".."}"#, "name"),
        (#"{"name":"%2F"}"#, "name"),
        (#"{"name":"é"}"#, "name"),
        (#"{"name":"\#(String(repeating: "a", count: 64))"}"#, "name"),
        (#"{"name":"a","foo":1}"#, "foo"),
        (#"{"name":"a","exchange":"x"}"#, "exchange"),
        (#"{"name":"a","exchange":{"type":"x"}}"#, "exchange.type"),
        (#"{"name":"a","exchange":{"name":"amq.topic"}}"#, "exchange.name"),
        (#"{"name":"a","exchange":{"nme":"x"}}"#, "exchange.nme"),
        (#"{"name":"a","queue":{"type":"stream"}}"#, "queue.type"),
        (#"{"name":"a","queue":{"name":""}}"#, "queue.name"),
        (#"{"name":"a","queue":null}"#, "queue"),
        (#"{"name":"a","routing_key":["x"]}"#, "routing_key"),
        (#"{"name":"a","routing_key":"a b"}"#, "routing_key"),
    ])
    func invalidFieldsAreNamed(json: String, field: String) {
        let problem = #expect(throws: Problem.self) { try decode(json) }
        #expect(problem?.status == 400)
        #expect(problem?.slug == "invalid-field")
        #expect(problem?.errors.map(\.field).contains(field) == true, "\(problem?.errors ?? [])")
    }

    @Test func oneAnswerNamesEveryBadField() {
        let problem = #expect(throws: Problem.self) {
            try decode(#"{"name":"Bad/x","queue":{"type":"x"},"foo":1}"#)
        }
        #expect(Set(problem?.errors.map(\.field) ?? []) == ["name", "queue.type", "foo"])
    }
}

@Suite struct StrictJSONTests {
    @Test(arguments: [
        #"{"a":1,"a":2}"#, #"{"a":1,}"#, "[1,]", "01", "1.", ".5", "+1", "-", "1e", #""\x""#, #""\ud800""#,
        "\"a\u{01}\"", "nul", "tru", "{\"a\" 1}", "[1 2]", "1 2", "\u{FEFF}{}", #"{'a':1}"#, "NaN",
        String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
    ])
    func refuses(text: String) {
        #expect(throws: StrictJSON.Failure.self) { try StrictJSON.parse(Array(text.utf8)) }
    }

    @Test func parsesWhatRFC8259Allows() throws {
        let value = try StrictJSON.parse(Array(#" {"s":"a\"\\\/\n\u00e9\ud83d\ude00","n":[0,-1,2.5,1e3,-0.0e-1],"b":[true,false,null],"o":{}} "#.utf8))
        guard case .object(let object) = value else { Issue.record("not an object"); return }
        #expect(object["s"] == .string("a\"\\/\né😀"))
        #expect(object["n"] == .array([.int(0), .int(-1), .number(2.5), .number(1000), .number(-0.0)]))
        #expect(object["b"] == .array([.bool(true), .bool(false), .null]))
        #expect(object["o"] == .object([:]))
        #expect(try StrictJSON.parse(Array("123456789012345678901234567890".utf8)) == .number(1.2345678901234568e29))
    }
}
