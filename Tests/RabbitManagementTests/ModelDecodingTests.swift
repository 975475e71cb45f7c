import Foundation
import Testing
@testable import RabbitManagement
import WireFormat

@Suite struct ModelDecodingTests {
    private func json(_ text: String) throws -> JSONValue {
        try JSONValue.decode(Array(text.utf8))
    }

    @Test func whoamiTagsAsStringOrArray() throws {
        #expect(try WhoAmI(json: json(#"{"name":"a","tags":"administrator,monitoring"}"#)).tags == ["administrator", "monitoring"])
        #expect(try WhoAmI(json: json(#"{"name":"a","tags":["administrator"]}"#)).tags == ["administrator"])
        #expect(try WhoAmI(json: json(#"{"name":"a","tags":""}"#)).tags == [])
    }

    @Test func vhostFrom310() throws {
        let vhost = try VhostInfo(json: json(#"""
            {"name":"v","description":"d1","tags":["t1","t2"],"default_queue_type":"quorum",
             "metadata":{"default_queue_type":"quorum","description":"d1","tags":["t1","t2"]},
             "tracing":false,"cluster_state":{"rabbit@a":"running"}}
            """#))
        #expect(vhost == VhostInfo(name: "v", description: "d1", tags: ["t1", "t2"],
                                   clusterState: ["rabbit@a": "running"], defaultQueueType: "quorum"))
        #expect(vhost.isRunning)
    }

    /// RabbitMQ 4.1 and later say whether the vhost is protected from deletion (4.3.6's answer).
    @Test func vhostDeletionProtectionFrom43() throws {
        let vhost = try VhostInfo(json: json(#"""
            {"name":"t1","description":"d1","tags":["warren"],"default_queue_type":"classic","protected_from_deletion":true,
             "metadata":{"description":"d1","tags":["warren"],"default_queue_type":"classic","protected_from_deletion":true},
             "tracing":false,"cluster_state":{"rabbit@a":"running"}}
            """#))
        #expect(vhost.protectedFromDeletion == true)
        #expect(try VhostInfo(json: json(#"{"name":"t1","protected_from_deletion":false}"#)).protectedFromDeletion == false)
        #expect(try VhostInfo(json: json(#"{"name":"t1"}"#)).protectedFromDeletion == nil)
    }

    @Test func vhostUndefinedQueueTypeAndStoppedNode() throws {
        let vhost = try VhostInfo(json: json(#"{"name":"/","default_queue_type":"undefined","cluster_state":{"a":"running","b":"stopped"}}"#))
        #expect(vhost.defaultQueueType == nil)
        #expect(!vhost.isRunning)
        #expect(vhost.description == "")
    }

    @Test func queueTypeFromFieldOrArgument() throws {
        let fromField = try QueueInfo(json: json(#"{"name":"q","durable":true,"type":"quorum","arguments":{"x-delivery-limit":5}}"#))
        #expect(fromField.type == "quorum")
        #expect(fromField.arguments["x-delivery-limit"] == .int(5))
        #expect(fromField.messages == nil)
        let fromArgument = try QueueInfo(json: json(#"{"name":"q","durable":true,"arguments":{"x-queue-type":"stream"},"messages":3}"#))
        #expect(fromArgument.type == "stream")
        #expect(fromArgument.messages == 3)
        #expect(try QueueInfo(json: json(#"{"name":"q"}"#)).type == "classic")
    }

    @Test func missingNameIsInvalidResponse() {
        #expect(throws: ManagementError.self) { try UserInfo(json: json(#"{"tags":[]}"#)) }
        #expect(throws: ManagementError.self) { try UserInfo(json: json(#"[]"#)) }
    }

    @Test func jsonValueRoundTrip() throws {
        let value: JSONValue = ["i": 5, "d": 1.5, "s": "x/y", "b": true, "n": nil, "a": [1, "two"]]
        let text = value.compactJSON
        #expect(text == #"{"a":[1,"two"],"b":true,"d":1.5,"i":5,"n":null,"s":"x/y"}"#)
        #expect(try json(text) == value)
    }

    @Test func nonFiniteNumberCannotBeEncoded() {
        #expect(throws: (any Error).self) { try JSONValue.number(.nan).encodedBytes() }
    }
}
