import Testing
@testable import RabbitManagement
import WireFormat

/// Big listings are read element by element (`StrictJSON.Elements`, `decodeList` over bytes):
/// the same items as decoding the whole answer first, the same refusals.
@Suite struct ListingDecodingTests {
    private func response(_ text: String) -> ManagementResponse {
        ManagementResponse(status: 200, body: Array(text.utf8))
    }

    private func elements(_ text: String) throws(StrictJSON.Failure) -> [JSONValue] {
        var reader = StrictJSON.Elements(Array(text.utf8))
        var out: [JSONValue] = []
        while let item = try reader.next() { out.append(item) }
        return out
    }

    @Test func elementsAreWhatTheWholeParseHas() throws {
        let text = #" [ {"name":"a","tags":["x"],"n":{"deep":[1,2.5,null]}} , "s", 3, true, [], {} ] "#
        guard case .array(let whole) = try StrictJSON.parse(Array(text.utf8)) else { Issue.record("not an array"); return }
        #expect(try elements(text) == whole)
        #expect(try elements("[]").isEmpty)
        #expect(try elements(" [ ] \n").isEmpty)
    }

    @Test(arguments: ["", "{}", "[1,]", "[1 2]", "[1", "[1]]", "[1] x", #"[{"a":1,"a":2}]"#, "[\"\u{01}\"]"])
    func elementsRefuse(text: String) {
        #expect(throws: StrictJSON.Failure.self) { try elements(text) }
    }

    @Test func itemsGoneFromTheListingAreLeftOut() throws {
        let users = try decodeList(response(#"[{"name":"a","tags":""},[],null,{},{"name":"b","tags":["management"]}]"#),
                                   what: "user list") { (item: JSONValue) throws(ManagementError) in try UserInfo(json: item) }
        #expect(users == [UserInfo(name: "a"), UserInfo(name: "b", tags: ["management"])])
    }

    @Test func sameVhostsAsFromTheDecodedTree() throws {
        let text = #"""
            [{"name":"/","description":"Default virtual host","tags":[],"cluster_state":{"rabbit@a":"running"},"default_queue_type":"classic"},
             {"name":"w.t.e","description":"{\"warren_format\":1,\"note\":\"caf\u00e9\"}","tags":["warren"],"cluster_state":{"rabbit@a":"running"},"default_queue_type":"undefined"}]
            """#
        let decode = { (item: JSONValue) throws(ManagementError) in try VhostInfo(json: item) }
        let streamed = try decodeList(response(text), what: "vhost list", decode)
        let whole = try decodeList(try JSONValue.decode(Array(text.utf8)), what: "vhost list", decode)
        #expect(streamed == whole)
        #expect(streamed[1].description == #"{"warren_format":1,"note":"café"}"#)
    }

    @Test(arguments: ["", "not json", #"{"error":"x"}"#, #"[{"name":"a"},"#])
    func aBodyThatIsNotAListingIsAnInvalidResponse(text: String) {
        let error = #expect(throws: ManagementError.self) {
            try decodeList(response(text), what: "user list") { (item: JSONValue) throws(ManagementError) in try UserInfo(json: item) }
        }
        #expect(error?.code == .invalidResponse)
    }
}
