import Testing
@testable import HTTPServer

@Suite("Router")
struct RouterTests {
    private static func handler(_ name: String) -> Router.Handler {
        { _, _ in HTTPResponse(status: 200, body: Array(name.utf8)) }
    }

    private var router: Router = {
        var router = Router()
        router.add("GET", "/", handler("root"))
        router.add("GET", "/v1/environments", handler("list"))
        router.add("POST", "/v1/environments", handler("create"))
        router.add("GET", "/v1/environments/{id}", handler("get"))
        router.add("DELETE", "/v1/environments/{id}", handler("delete"))
        router.add("POST", "/v1/environments/{id}/reconcile", handler("reconcile"))
        router.add("GET", "/v1/environments/{env}/queues/{queue}", handler("queue"))
        router.add("GET", "/v1/environments/search", handler("search"))
        return router
    }()

    /// The name of the handler that matched, its parameters and its pattern.
    private func found(_ method: String, _ path: String) async -> (String, RouteParameters, String)? {
        guard case .found(let handler, let parameters, let pattern) = router.match(method: method, path: path) else {
            return nil
        }
        let response = await handler(HTTPRequest(method: method, path: path), parameters)
        return (String(decoding: response.body, as: UTF8.self), parameters, pattern)
    }

    @Test(arguments: [
        ("GET", "/", "root"),
        ("GET", "/v1/environments", "list"),
        ("POST", "/v1/environments", "create"),
        ("GET", "/v1/environments/abc", "get"),
        ("DELETE", "/v1/environments/abc", "delete"),
        ("POST", "/v1/environments/abc/reconcile", "reconcile"),
        ("GET", "/v1/environments/search", "search"),
        ("HEAD", "/v1/environments/abc", "get"),
    ])
    func routes(method: String, path: String, expected: String) async {
        #expect(await found(method, path)?.0 == expected)
    }

    @Test func parametersAreCapturedAndReportedWithThePattern() async throws {
        let (_, parameters, pattern) = try #require(await found("GET", "/v1/environments/dev/queues/orders"))
        #expect(parameters["env"] == "dev")
        #expect(parameters["queue"] == "orders")
        #expect(parameters["missing"] == nil)
        #expect(pattern == "/v1/environments/{env}/queues/{queue}")
    }

    @Test(arguments: [
        ("/v1/environments/caf%C3%A9", "café"),
        ("/v1/environments/a%20b", "a b"),
        ("/v1/environments/a+b", "a+b"),
        ("/v1/environments/a%2Fb", "a/b"),
        ("/v1/environments/a%2fb%2F", "a/b/"),
        ("/v1/environments/%25", "%"),
    ])
    func parametersArePercentDecodedAfterSplitting(path: String, id: String) async throws {
        let (name, parameters, _) = try #require(await found("GET", path))
        #expect(name == "get")
        #expect(parameters["id"] == id)
    }

    @Test func encodedLiteralSegmentsMatch() async {
        #expect(await found("GET", "/v1/%65nvironments")?.0 == "list")
    }

    @Test(arguments: [
        "/v1/environments/%zz",
        "/v1/environments/%4",
        "/v1/environments/abc%",
        "/v1/environments/%FF",          // not UTF-8
        "/nowhere",
        "/v1/environments/abc/unknown",
        "/v1/environments/",             // trailing slash: an empty segment, never a parameter
        "/v1/environments//reconcile",
        "/v1/environments%2Fabc",        // %2F is not a separator
        "",
        "v1/environments",
    ])
    func notFound(path: String) {
        guard case .notFound = router.match(method: "GET", path: path) else {
            Issue.record("\(path) matched")
            return
        }
    }

    @Test func trailingSlashIsSignificantForLiterals() {
        var router = Router()
        router.add("GET", "/a/", Self.handler("slash"))
        guard case .found = router.match(method: "GET", path: "/a/") else { Issue.record("/a/ not found"); return }
        guard case .notFound = router.match(method: "GET", path: "/a") else { Issue.record("/a matched /a/"); return }
    }

    @Test func wrongMethodListsTheAllowedOnes() {
        guard case .methodNotAllowed(let allowed) = router.match(method: "PUT", path: "/v1/environments/abc") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == ["DELETE", "GET", "HEAD"])
        guard case .methodNotAllowed(let allowed) = router.match(method: "GET", path: "/v1/environments/abc/reconcile") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == ["POST"])
    }

    @Test func methodsAreCaseSensitive() {
        guard case .methodNotAllowed = router.match(method: "get", path: "/v1/environments") else {
            Issue.record("lowercase get matched GET")
            return
        }
    }

    @Test func literalBeatsParameterWhateverTheOrder() async {
        var router = Router()
        router.add("GET", "/items/{id}", Self.handler("param"))
        router.add("GET", "/items/new", Self.handler("literal"))
        guard case .found(let handler, _, let pattern) = router.match(method: "GET", path: "/items/new") else {
            Issue.record("not found")
            return
        }
        #expect(pattern == "/items/new")
        #expect(await handler(HTTPRequest(), RouteParameters()).body == Array("literal".utf8))
    }

    @Test func percentDecodeIsExposedForCallersWantingA400() {
        #expect(Router.percentDecode("/a%20b") == "/a b")
        #expect(Router.percentDecode("/a%2") == nil)
    }
}
