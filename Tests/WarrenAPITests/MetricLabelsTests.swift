import Testing
@testable import WarrenAPI

@Suite struct MetricLabelsTests {
    @Test(arguments: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"])
    func standardMethodsKeepTheirName(method: String) {
        #expect(MetricLabels.method(method) == method)
    }

    // Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET. Any token the parser takes
    // must map into the closed set.
    @Test(arguments: ["XJUNK0001", "get", "Get", "PROPFIND", "BREW", "GETX", "!#$%&'*+-.^_`|~", "", String(repeating: "A", count: 4096)])
    func everyOtherMethodIsOther(method: String) {
        #expect(MetricLabels.method(method) == "other")
    }

    @Test func theMethodLabelHasTenValuesAtMost() {
        let many = (0..<10_000).map { "XJUNK\($0)" } + Array(MetricLabels.standardMethods)
        #expect(Set(many.map(MetricLabels.method)) == MetricLabels.standardMethods.union(["other"]))
        #expect(MetricLabels.standardMethods.count == 9)
    }
}
