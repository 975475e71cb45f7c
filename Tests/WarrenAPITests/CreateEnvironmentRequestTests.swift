import EnvironmentModel
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
        (#"{"name":"a","queue":{"type":"lazy"}}"#, "queue.type"),
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

    // The rules openapi.yaml states, as Warren applies them (the live side is in
    // Tests/integration/test_validation.py, which judges each body by the schema as well).

    @Test(arguments: [
        (#"{"name":"a","blueprint":"b","queues":[{"name":"q"}]}"#, "blueprint"),
        (#"{"name":"a","queue":{"name":"q"},"queues":[{"name":"r"}]}"#, "queue"),
        (#"{"name":"a","routing_key":"k","bindings":[{"queue":"a"}]}"#, "routing_key"),
        (#"{"name":"a","exchange":{"name":"warren.x"}}"#, "exchange.name"),
        (#"{"name":"a","queues":[{"name":"warren.q"}]}"#, "queues[0].name"),
        (#"{"name":"a","queue":{"name":".."}}"#, "queue.name"),
        (#"{"name":"a","exchange":{"name":"."}}"#, "exchange.name"),
        (#"{"name":"a","queue":{"type":"classic","delivery_limit":2}}"#, "queue.delivery_limit"),
        (#"{"name":"a","queue":{"overflow":"drop-head"}}"#, "queue.overflow"),
        (#"{"name":"a","queue":{"max_length":1,"overflow":"reject-publish-dlx"}}"#, "queue.overflow"),
        (#"{"name":"a","queues":[{"name":"\#(String(repeating: "q", count: 252))","dead_letter":true}]}"#, "queues[0].name"),
        (#"{"name":"a","exchange":{"name":"\#(String(repeating: "e", count: 252))"},"queue":{"dead_letter":true}}"#, "exchange.name"),
        (#"{"name":"a","bindings":[{"queue":"a","arguments":{"k":"v"}}]}"#, "bindings[0].arguments"),
        (#"{"name":"a","exchange":{"type":"headers"},"bindings":[{"queue":"a","arguments":{"x-match":"none"}}]}"#, "bindings[0].arguments"),
        (#"{"name":"a","exchange":{"type":"headers"},"bindings":[{"queue":"a","arguments":{"r\u00e9gion":"eu"}}]}"#, "bindings[0].arguments"),
        (#"{"name":"a","exchange":{"type":"headers"},"bindings":[{"queue":"a","arguments":{"a\u0007":"eu"}}]}"#, "bindings[0].arguments"),
        (#"{"name":"a","exchange":{"type":"headers"},"bindings":[{"queue":"a","arguments":{"h":"\#(String(repeating: "é", count: 256))"}}]}"#, "bindings[0].arguments"),
        (#"{"name":"a","bindings":[\#(Array(repeating: #"{"queue":"a"}"#, count: 65).joined(separator: ","))]}"#, "bindings"),
        (#"{"name":"a","queues":[\#((0..<33).map { #"{"name":"q\#($0)"}"# }.joined(separator: ","))]}"#, "queues"),
    ])
    func rulesTheSchemaStates(json: String, field: String) {
        let problem = #expect(throws: Problem.self) { try decode(json) }
        #expect(problem?.slug == "invalid-field")
        #expect(Set(problem?.errors.map(\.field) ?? []) == [field], "\(problem?.errors ?? [])")
    }

    @Test func aBindingListedTwiceIsMadeOnce() throws {
        let spec = try decode(#"{"name":"a","queues":[{"name":"q"}],"bindings":[{"queue":"q"},{"queue":"q","routing_key":""},{"queue":"q","routing_key":"k"}]}"#)
        #expect(spec.bindings == [.init(queue: "q", routingKey: ""), .init(queue: "q", routingKey: "k")])
        // 64 items as sent are allowed, however many of them are alike.
        let alike = Array(repeating: #"{"queue":"a"}"#, count: 64).joined(separator: ",")
        #expect(try decode(#"{"name":"a","bindings":[\#(alike)]}"#).bindings == [.init(queue: "a", routingKey: "")])
    }

    @Test func headerValuesAreCountedInCharacters() throws {
        let value = String(repeating: "é", count: 255)  // 510 bytes: a long string may hold them
        let spec = try decode(#"{"name":"a","exchange":{"type":"headers"},"bindings":[{"queue":"a","arguments":{"x-match":"any","h":"\#(value)"}}]}"#)
        #expect(spec.bindings[0].arguments["h"] == value)
    }

    @Test func aQueueNamedTwiceIsOneProblemNotTwo() {
        // Its default bindings would name it twice as well; only the queue is reported.
        let problem = #expect(throws: Problem.self) { try decode(#"{"name":"a","queues":[{"name":"q"},{"name":"q","type":"classic"}]}"#) }
        #expect(problem?.errors.map(\.field) == ["queues[1].name"])
    }

    @Test(arguments: [("queues", #"{"name":"a","queues":[{"name":"q","max_priority":5,"delivery_limit":3}]}"#, "queues[0].delivery_limit"),
                      ("queue", #"{"name":"a","queue":{"max_priority":5,"delivery_limit":3}}"#, "queue.delivery_limit")])
    func deliveryLimitWithPrioritiesFollowsTheRelease(form: String, json: String, field: String) throws {
        let request = try CreateEnvironmentRequest.decode(Array(json.utf8))
        let before4 = request.spec.queues.map { queue in
            var made = queue
            made.type = .classic  // what Provisioner.explicit makes of it before RabbitMQ 4
            return made
        }
        let problem = #expect(throws: Problem.self) { try request.check(asMade: before4) }
        #expect(problem?.errors.map(\.field) == [field])
        #expect(throws: Never.self) { try request.check(asMade: request.spec.queues) }
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
