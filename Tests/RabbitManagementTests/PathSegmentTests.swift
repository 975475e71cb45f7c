import Testing
@testable import RabbitManagement

@Suite struct PathSegmentTests {
    @Test(arguments: [
        ("a/b", "a%2Fb"),
        ("/", "%2F"),
        ("%", "%25"),
        (" ", "%20"),
        // Fully encoded; the broker decodes %2B back to "+" (checked in the integration tests).
        ("+", "%2B"),
        ("AZaz09-._~", "AZaz09-._~"),
        ("a?b#c&d=e", "a%3Fb%23c%26d%3De"),
        ("é", "%C3%A9"),
        ("q.1", "q.1"),
        ("...", "..."),
    ])
    func encodesEverythingButUnreserved(raw: String, encoded: String) throws {
        #expect(try PathSegment.encode(raw) == encoded)
    }

    @Test(arguments: ["", ".", ".."])
    func rejectsSegmentsTheBrokerMisreads(segment: String) {
        #expect(throws: ManagementError.self) { try PathSegment.encode(segment) }
        do {
            _ = try PathSegment.encode(segment)
        } catch {
            #expect(error.code == .invalidRequest)
        }
    }

    @Test func buildsPathAndQuery() throws {
        let path = try PathSegment.path(["vhosts", "a/b"], query: [("columns", "name,tags")])
        #expect(path == "/api/vhosts/a%2Fb?columns=name%2Ctags")
    }

    @Test func rejectsBadSegmentAnywhereInPath() {
        #expect(throws: ManagementError.self) { try PathSegment.path(["queues", "v", ".."], query: []) }
    }
}
