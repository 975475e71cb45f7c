import Foundation
import Testing
@testable import RabbitManagement

@Suite struct PasswordHashTests {
    @Test func matchesRabbitMQTestVector() {
        let hash = RabbitPasswordHash.hash(password: "test12", salt: [0x90, 0x8D, 0xC6, 0x0A])
        #expect(hash == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR")
    }

    @Test func randomSaltsDiffer() {
        let hashes = Set((0..<32).map { _ in RabbitPasswordHash.hash(password: "same") })
        #expect(hashes.count == 32)
    }

    @Test func randomHashHasSaltPrefixAndVerifies() throws {
        let hash = RabbitPasswordHash.hash(password: "pässwörd")
        let bytes = try #require(Data(base64Encoded: hash))
        #expect(bytes.count == 4 + 32)
        // Recomputing with the embedded salt gives the same value: the broker's check.
        #expect(RabbitPasswordHash.hash(password: "pässwörd", salt: Array(bytes.prefix(4))) == hash)
    }

    /// Which secret made a binding's password is told from the broker's hash: the RabbitMQ
    /// vector verifies, a wrong password or a hash of another shape does not.
    @Test func verifiesAgainstTheBrokersHash() {
        #expect(RabbitPasswordHash.verifies(password: "test12", hash: "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"))
        #expect(!RabbitPasswordHash.verifies(password: "test13", hash: "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"))
        #expect(!RabbitPasswordHash.verifies(password: "test12", hash: "not base64"))
        #expect(!RabbitPasswordHash.verifies(password: "test12", hash: "kI3GCqW5"))
        #expect(RabbitPasswordHash.verifies(password: "pässwörd", hash: RabbitPasswordHash.hash(password: "pässwörd")))
    }
}
