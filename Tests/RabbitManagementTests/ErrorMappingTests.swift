import Testing
@testable import RabbitManagement

@Suite struct ErrorMappingTests {
    @Test(arguments: [
        (400, ManagementError.Code.badRequest),
        (401, .unauthorized),
        (403, .unauthorized),
        (404, .notFound),
        (405, .unexpectedStatus),
        (409, .conflict),
        (412, .conflict),
        (500, .brokerFailure),
        (503, .brokerFailure),
    ])
    func statusToCode(status: Int, code: ManagementError.Code) {
        let error = ManagementError.http(status: status, operation: "PUT queue", body: [])
        #expect(error.code == code)
        #expect(error.status == status)
        #expect(error.summary == "management API answered \(status) for PUT queue")
        #expect(error.brokerReason == nil)
    }

    @Test func brokerReasonStaysOutOfSummary() {
        let body = Array(#"{"error":"bad_request","reason":"inequivalent arg 'durable' for queue 'q' in vhost 'v'"}"#.utf8)
        let error = ManagementError.http(status: 400, operation: "PUT queue", body: body)
        #expect(error.brokerReason == "bad_request: inequivalent arg 'durable' for queue 'q' in vhost 'v'")
        #expect(!error.summary.contains("inequivalent"))
        #expect(error.description == error.summary)
    }

    @Test func erlangTermReasonRenderedAsJSON() {
        let body = Array(#"{"error":"bad_request","reason":["no_such_user","nope"]}"#.utf8)
        let error = ManagementError.http(status: 400, operation: "PUT user limit", body: body)
        #expect(error.brokerReason == #"bad_request: ["no_such_user","nope"]"#)
    }

    @Test func nonJSONBodyKeptTruncated() {
        let error = ManagementError.http(status: 502, operation: "GET vhost", body: Array(String(repeating: "x", count: 600).utf8))
        #expect(error.brokerReason?.count == 515)
        #expect(error.code == .brokerFailure)
    }
}
