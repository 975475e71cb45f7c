import Foundation
import Logging
import Testing
@testable import RabbitManagement
import WireFormat

/// Against a real broker: set WARREN_TEST_MANAGEMENT_URL (guest/guest must work, i.e. loopback).
/// Every test uses unique names and removes what it created.
@Suite(.enabled(if: TestBroker.isAvailable, "set WARREN_TEST_MANAGEMENT_URL to run against a broker"))
struct IntegrationTests {
    let client: ManagementClient

    init() throws {
        client = try TestBroker.client()
    }

    /// A running vhost with guest permissions, deleted after `body`.
    private func withVhost(_ prefix: String, _ body: (String) async throws -> Void) async throws {
        let vhost = uniqueName(prefix)
        try await client.putVhost(vhost, description: "test", tags: [], defaultQueueType: nil)
        do {
            try await client.awaitVhostRunning(vhost)
            try await client.putPermissions(vhost: vhost, user: "guest", configure: ".*", write: ".*", read: ".*")
            try await body(vhost)
        } catch {
            _ = try? await client.deleteVhost(vhost)
            throw error
        }
        _ = try await client.deleteVhost(vhost)
    }

    @Test func overviewAndWhoami() async throws {
        let overview = try await client.overview()
        #expect(!overview.rabbitmqVersion.isEmpty)
        let me = try await client.whoami()
        #expect(me.name == "guest")
        #expect(me.tags.contains("administrator"))
    }

    @Test func globalParameters() async throws {
        let name = uniqueName("warren.test-index.")
        #expect(try await client.globalParameter(name) == nil)
        try await client.putGlobalParameter(name, value: ["environments": ["a", "b"]])
        #expect(try await client.globalParameter(name) == ["environments": ["a", "b"]])
        try await client.putGlobalParameter(name, value: ["environments": []])
        #expect(try await client.globalParameters(prefix: name) == [name: ["environments": []]])
        #expect(try await client.globalParameters(prefix: name + "-none").isEmpty)
        _ = try await client.call("DELETE", ["global-parameters", name])
        #expect(try await client.globalParameter(name) == nil)
    }

    @Test func vhostLifecycle() async throws {
        let name = uniqueName("vhost")
        let description = #"{"env":"e1","owner":"täm"}"#
        try await client.putVhost(name, description: description, tags: ["warren", "test"], defaultQueueType: "quorum")
        try await client.awaitVhostRunning(name)
        let info = try #require(try await client.vhost(name))
        #expect(info.name == name)
        #expect(info.description == description)
        #expect(info.tags == ["warren", "test"])
        #expect(info.defaultQueueType == "quorum")
        #expect(info.isRunning)
        #expect(try await client.vhosts().contains { $0.name == name && $0.tags == ["warren", "test"] })

        // A repeat PUT replaces the metadata.
        try await client.putVhost(name, description: "second", tags: [], defaultQueueType: "quorum")
        let updated = try #require(try await client.vhost(name))
        #expect(updated.description == "second")
        #expect(updated.tags == [])

        #expect(try await client.deleteVhost(name))
        #expect(try await client.deleteVhost(name) == false)
        #expect(try await client.vhost(name) == nil)
    }

    /// From RabbitMQ 4.1 a protected vhost's DELETE is refused (412) until the protection is
    /// lifted; both calls repeat without error, and a record write (PUT) keeps the protection.
    /// Before 4.1 the path does not exist (405).
    @Test func vhostDeletionProtection() async throws {
        let name = uniqueName("vhost")
        try await client.putVhost(name, description: "d", tags: [], defaultQueueType: nil)
        do {
            try await checkDeletionProtection(name)
        } catch {
            _ = try? await client.unprotectVhost(name)
            _ = try? await client.deleteVhost(name)
            throw error
        }
    }

    /// The body of `vhostDeletionProtection`, which removes the vhost when this throws.
    private func checkDeletionProtection(_ name: String) async throws {
        let version = try await client.overview().rabbitmqVersion
        let parts = version.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2, (parts[0], parts[1]) >= (4, 1) else {
            await #expect(throws: ManagementError.self) { try await client.protectVhost(name) }
            #expect(try await client.vhost(name)?.protectedFromDeletion == nil)
            #expect(try await client.deleteVhost(name))
            return
        }
        try await client.protectVhost(name)
        try await client.protectVhost(name)
        try await client.putVhost(name, description: "d2", tags: [], defaultQueueType: nil)
        #expect(try await client.vhost(name)?.protectedFromDeletion == true)
        do {
            _ = try await client.deleteVhost(name)
            Issue.record("a protected vhost was deleted")
        } catch let error as ManagementError {
            #expect(error.status == 412 && error.code == .conflict)
        }
        #expect(try await client.unprotectVhost(name))
        #expect(try await client.unprotectVhost(name))
        #expect(try await client.vhost(name)?.protectedFromDeletion == false)
        #expect(try await client.deleteVhost(name))
        #expect(try await client.unprotectVhost(name) == false)
    }

    @Test func userLifecycleAndLoginWithHashedPassword() async throws {
        let name = uniqueName("user")
        let password = "pw-\(UInt64.random(in: .min ... .max))"
        try await client.putUser(name, passwordHash: RabbitPasswordHash.hash(password: password), tags: ["management"])
        defer { Task { [client] in _ = try? await client.deleteUser(name) } }
        #expect(try await client.user(name) == UserInfo(name: name, tags: ["management"]))
        #expect(try await client.users().contains { $0.name == name })

        var configuration = TestBroker.configuration()
        configuration.username = name
        configuration.password = password
        let asUser = try ManagementClient(configuration: configuration, logger: Logger(label: "test"))
        defer { asUser.shutdown() }
        #expect(try await asUser.whoami() == WhoAmI(name: name, tags: ["management"]))

        configuration.password = "wrong"
        let wrong = try ManagementClient(configuration: configuration, logger: Logger(label: "test"))
        defer { wrong.shutdown() }
        await #expect {
            _ = try await wrong.whoami()
        } throws: { error in
            guard let error = error as? ManagementError else { return false }
            return error.code == .unauthorized && error.status == 401 && !error.summary.contains("wrong")
        }

        #expect(try await client.deleteUser(name))
        #expect(try await client.deleteUser(name) == false)
        #expect(try await client.user(name) == nil)
    }

    /// Two deletes of one user at once: neither throws, the user is gone, and at least one of
    /// them says it deleted it. On RabbitMQ 3.10 exactly one does (its loser answers 404, or
    /// 500 about once in ten pairs, which the client, finding the user gone, takes as absent); from 4.0 both may
    /// answer 204, each having found the user before either removed it. Nothing of Warren's
    /// counts on one winner: a revocation answers 204 either way.
    @Test func racingDeletesOfOneUser() async throws {
        let major = Int(try await client.overview().rabbitmqVersion.prefix { $0 != "." }) ?? 0
        for pair in 0..<40 {
            let name = uniqueName("race\(pair)")
            try await client.putUser(name, passwordHash: RabbitPasswordHash.hash(password: "pw"), tags: [])
            async let first = client.deleteUser(name)
            async let second = client.deleteUser(name)
            let deleted = try await [first, second]
            if major < 4 {
                #expect(deleted.filter { $0 }.count == 1, "pair \(pair): \(deleted)")
            } else {
                #expect(deleted.contains(true), "pair \(pair): \(deleted)")
            }
            #expect(try await client.user(name) == nil)
        }
    }

    /// The delete guard's question: a queue's message is seen (and stays), an absent queue holds nothing.
    @Test func holdsMessages() async throws {
        try await withVhost("holds") { vhost in
            #expect(try await client.holdsMessages(vhost: vhost, name: "absent") == false)
            try await client.putQueue(vhost: vhost, name: "q", durable: true)
            #expect(try await client.holdsMessages(vhost: vhost, name: "q") == false)
            _ = try await client.call("POST", ["exchanges", vhost, "amq.default", "publish"], body: [
                "properties": [:], "routing_key": "q", "payload": "job", "payload_encoding": "string",
            ])
            #expect(try await client.holdsMessages(vhost: vhost, name: "q"))
            #expect(try await client.holdsMessages(vhost: vhost, name: "q"), "the fetched message stays")
        }
    }

    /// RabbitMQ 3.10 answers a fetch from a quorum queue declared a moment ago with 400 "noproc"
    /// (no process yet): the question is asked again, never failed. Declarations and fetches at
    /// once, 20 queues.
    @Test func holdsMessagesWhileAQuorumQueueIsBeingDeclared() async throws {
        try await withVhost("noproc") { vhost in
            for index in 0..<20 {
                let name = "q\(index)"
                async let declared = client.putQueue(
                    vhost: vhost, name: name, durable: true, arguments: ["x-queue-type": "quorum"])
                var answers: [Bool] = []
                for _ in 0..<5 {
                    answers.append(try await client.holdsMessages(vhost: vhost, name: name))
                }
                _ = try await declared
                #expect(answers.allSatisfy { !$0 })
                #expect(try await client.holdsMessages(vhost: vhost, name: name) == false)
            }
        }
    }

    @Test func permissions() async throws {
        try await withVhost("perm") { vhost in
            let user = uniqueName("permuser")
            try await client.putUser(user, passwordHash: RabbitPasswordHash.hash(password: "x"), tags: [])
            try await client.putPermissions(vhost: vhost, user: user, configure: "^c", write: "^w", read: "^r")
            let found = try await client.permissions(vhost: vhost)
            #expect(found.contains(PermissionInfo(user: user, vhost: vhost, configure: "^c", write: "^w", read: "^r")))
            #expect(try await client.permissions().contains(PermissionInfo(user: user, vhost: vhost, configure: "^c", write: "^w", read: "^r")))
            #expect(try await client.deleteUser(user))
        }
    }

    @Test func policies() async throws {
        try await withVhost("policy") { vhost in
            let definition: [String: JSONValue] = ["message-ttl": 60000, "delivery-limit": 5]
            try await client.putPolicy(vhost: vhost, name: "warren.queue.jobs.v1", pattern: #"^jobs\.v1$"#, definition: definition)
            try await client.putPolicy(vhost: vhost, name: "warren.queue.jobs.v1", pattern: #"^jobs\.v1$"#, definition: definition)  // replaced: fine
            let stored = try await client.call("GET", ["policies", vhost, "warren.queue.jobs.v1"]).json()
            guard case .object(let policy) = stored else { Issue.record("no policy object"); return }
            #expect(policy["definition"] == .object(definition))
            #expect(policy["apply-to"] == "queues" && policy["pattern"] == #"^jobs\.v1$"#)
            // The broker refuses an empty definition: Warren deletes the policy instead.
            await #expect(throws: ManagementError.self) {
                try await client.putPolicy(vhost: vhost, name: "empty", pattern: "^x$", definition: [:])
            }
            #expect(try await client.deletePolicy(vhost: vhost, name: "warren.queue.jobs.v1"))
            #expect(try await client.deletePolicy(vhost: vhost, name: "warren.queue.jobs.v1") == false)
        }
    }

    @Test func exchangeQueueBinding() async throws {
        try await withVhost("topo") { vhost in
            try await client.putExchange(vhost: vhost, name: "events", type: "topic", durable: true)
            let exchange = try #require(try await client.exchange(vhost: vhost, name: "events"))
            #expect(exchange.type == "topic" && exchange.durable && !exchange.autoDelete && exchange.vhost == vhost)

            let arguments: [String: JSONValue] = ["x-queue-type": "quorum", "x-delivery-limit": 5]
            try await client.putQueue(vhost: vhost, name: "work", durable: true, arguments: arguments)
            try await client.putQueue(vhost: vhost, name: "work", durable: true, arguments: arguments)  // same: fine
            let queue = try #require(try await client.queue(vhost: vhost, name: "work"))
            #expect(queue.type == "quorum" && queue.durable)
            #expect(queue.arguments["x-delivery-limit"] == .int(5))

            // Redeclaring with other settings: 400, reason only in brokerReason.
            await #expect {
                try await client.putQueue(vhost: vhost, name: "work", durable: true, arguments: ["x-queue-type": "classic"])
            } throws: { error in
                guard let error = error as? ManagementError else { return false }
                return error.code == .badRequest && error.summary == "management API answered 400 for PUT queue"
                    && error.brokerReason?.contains("inequivalent") == true
            }

            try await client.bind(vhost: vhost, exchange: "events", queue: "work", routingKey: "orders.*")
            try await client.bind(vhost: vhost, exchange: "events", queue: "work", routingKey: "orders.*")  // no duplicate
            let bindings = try await client.bindings(vhost: vhost, exchange: "events", queue: "work")
            #expect(bindings.count == 1)
            let binding = try #require(bindings.first)
            #expect(binding.routingKey == "orders.*" && binding.source == "events" && binding.destination == "work")

            // The exact emptiness check a DELETE relies on: one message fetched and requeued
            // (the statistics would still say 0 right after a publish). It stays.
            let publish: JSONValue = ["properties": [:], "routing_key": "orders.new", "payload": "job", "payload_encoding": "string"]
            #expect(try await client.holdsMessages(vhost: vhost, name: "work") == false)
            _ = try await client.call("POST", ["exchanges", vhost, "events", "publish"], body: publish)
            #expect(try await client.holdsMessages(vhost: vhost, name: "work"))
            #expect(try await client.holdsMessages(vhost: vhost, name: "work"), "the message was requeued, not taken")

            #expect(try await client.deleteQueue(vhost: vhost, name: "work"))
            #expect(try await client.deleteQueue(vhost: vhost, name: "work") == false)
        }
    }

    @Test func limits() async throws {
        try await withVhost("limits") { vhost in
            try await client.putVhostLimit(vhost: vhost, name: "max-queues", value: 2)
            let limits = try await client.call("GET", ["vhost-limits", vhost]).json()
            guard case .array(let items) = limits else { Issue.record("not a list: \(limits)"); return }
            #expect(items.first?["value"]?["max-queues"] == .int(2))
        }
    }

    @Test func notFoundMapping() async throws {
        let absent = uniqueName("absent")
        await #expect {
            _ = try await client.call("GET", ["queues", absent, "q"])
        } throws: { error in
            guard let error = error as? ManagementError else { return false }
            return error.code == .notFound && error.status == 404
        }
        #expect(try await client.queue(vhost: absent, name: "q") == nil)
        #expect(try await client.vhost(absent) == nil)
        await #expect {
            try await client.putQueue(vhost: absent, name: "q", durable: true)
        } throws: { error in
            (error as? ManagementError)?.code == .notFound
        }
        // Permissions on an absent vhost are a 400, not a 404.
        await #expect {
            try await client.putPermissions(vhost: absent, user: "guest", configure: ".*", write: ".*", read: ".*")
        } throws: { error in
            (error as? ManagementError)?.code == .badRequest
        }
    }

    @Test(arguments: ["a/b%c d", "x+y", "ü/%2F"])
    func namesNeedingEncoding(suffix: String) async throws {
        let name = uniqueName("enc") + suffix
        try await client.putVhost(name, description: "", tags: [], defaultQueueType: nil)
        let info = try #require(try await client.vhost(name))
        #expect(info.name == name)
        #expect(try await client.vhosts().contains { $0.name == name })
        #expect(try await client.deleteVhost(name))
    }

    @Test func failoverToTheNextNodeAndRememberIt() async throws {
        let capture = LogCapture()
        let dead = deadURL()
        let failover = try TestBroker.client(urls: [dead, TestBroker.url!], logger: capture.logger)
        defer { failover.shutdown() }
        _ = try await failover.overview()
        _ = try await failover.whoami()
        _ = try await failover.overview()
        let skips = capture.all.filter { $0.contains("trying the next one") }
        #expect(skips.count == 1)  // only the first call tried the dead node
        #expect(capture.all.filter { $0.contains("node=\(TestBroker.url!)") && $0.contains("status=200") }.count == 3)
    }

    @Test func failoverAfterConnectTimeout() async throws {
        let hole = BlackHole(fullBacklog: true)
        let capture = LogCapture()
        var configuration = TestBroker.configuration(urls: [hole.url, TestBroker.url!])
        configuration.connectTimeout = .milliseconds(300)
        let failover = try ManagementClient(configuration: configuration, logger: capture.logger)
        defer { failover.shutdown() }
        let clock = ContinuousClock()
        let started = clock.now
        _ = try await failover.overview()
        #expect(clock.now - started >= .milliseconds(250))
        #expect(capture.all.contains { $0.contains("trying the next one") && $0.contains("timed out connecting") })
    }

    @Test func manyConcurrentCalls() async throws {
        try await withVhost("conc") { vhost in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<50 {
                    group.addTask { [client] in
                        try await client.putQueue(vhost: vhost, name: "q\(i)", durable: true)
                        _ = try #require(try await client.queue(vhost: vhost, name: "q\(i)"))
                    }
                }
                try await group.waitForAll()
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<50 {
                    group.addTask { [client] in _ = try await client.overview() }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func logsCarryCallDataButNoSecrets() async throws {
        let capture = LogCapture()
        var logger = capture.logger
        logger[metadataKey: "request_id"] = "req-42"
        let logged = client.withLogger(logger)
        let user = uniqueName("loguser")
        let password = "very-secret-\(UInt32.random(in: .min ... .max))"
        let hash = RabbitPasswordHash.hash(password: password)
        try await logged.putUser(user, passwordHash: hash, tags: [])
        _ = try await logged.user(user)
        #expect(try await logged.deleteUser(user))

        let lines = capture.all
        #expect(lines.count == 3)
        #expect(lines.allSatisfy { $0.contains("request_id=req-42") && $0.contains("duration_ms=") })
        #expect(lines.first?.contains("method=PUT") == true)
        #expect(lines.first?.contains("path=/api/users/\(user)") == true)
        #expect(lines.first?.contains("status=201") == true)
        #expect(!lines.joined().contains(password))
        #expect(!lines.joined().contains(hash))
        #expect(!lines.joined().contains("guest:guest"))
    }
}
