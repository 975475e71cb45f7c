import Logging
import Testing
@testable import RabbitManagement

@Suite struct ConfigurationTests {
    private func make(_ urls: [String]) throws -> ManagementClient {
        try ManagementClient(
            configuration: ManagementConfiguration(baseURLs: urls, username: "u", password: "secret-pw"),
            logger: Logger(label: "test"))
    }

    @Test(arguments: [
        [], ["ftp://h"], ["127.0.0.1:15672"], ["http://u:secret-pw@h:15672"], ["http://"], ["http://h?x=1"],
    ])
    func rejectsUnusableURLs(urls: [String]) {
        do {
            _ = try make(urls)
            Issue.record("accepted \(urls)")
        } catch let error as ManagementError {
            #expect(error.code == .invalidConfiguration)
            #expect(!error.summary.contains("secret-pw"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func acceptsAndNormalisesURLs() throws {
        let configuration = ManagementConfiguration(
            baseURLs: ["http://h:15672/", "HTTPS://h2/rabbit//"], username: "u", password: "p")
        #expect(try configuration.validatedBaseURLs() == ["http://h:15672", "HTTPS://h2/rabbit"])
    }

    @Test func descriptionHidesPassword() {
        let configuration = ManagementConfiguration(baseURLs: ["http://h"], username: "u", password: "secret-pw")
        #expect(!"\(configuration)".contains("secret-pw"))
    }
}
