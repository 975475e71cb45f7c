@testable import BrokerState
@testable import EnvironmentModel
import Locking
@testable import Provisioning
import Testing

/// Who held the lock, in order, and how many at once.
private final class Turns: Sendable {
    let order = PThreadMutex<[Int]>([])
    let holding = PThreadMutex(0)
}

@Suite struct LocalLocksTests {
    @Test func waitersGetTheirTurnInOrderAndOneAtATime() async throws {
        let locks = LocalLocks()
        #expect(await locks.acquire("team.a", within: .seconds(5)))
        let turns = Turns()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for waiter in 0..<8 {
                group.addTask {
                    #expect(await locks.acquire("team.a", within: .seconds(5)))
                    turns.holding.withLock { $0 += 1; #expect($0 == 1) }
                    turns.order.withLock { $0.append(waiter) }
                    try await Task.sleep(for: .milliseconds(2))
                    turns.holding.withLock { $0 -= 1 }
                    locks.release("team.a")
                }
                // Queued before the next one starts.
                try await Task.sleep(for: .milliseconds(20))
            }
            // Another key is not held up.
            #expect(await locks.acquire("team.b", within: .milliseconds(10)))
            locks.release("team.b")
            locks.release("team.a")
            try await group.waitForAll()
        }
        #expect(turns.order.withLock { $0 } == Array(0..<8))
        // Free again.
        #expect(await locks.acquire("team.a", within: .milliseconds(10)))
    }

    @Test func aWaiterWhoseTimeRunsOutHoldsNothingAndIsSkipped() async throws {
        let locks = LocalLocks()
        #expect(await locks.acquire("k", within: .seconds(1)))
        #expect(await locks.acquire("k", within: .milliseconds(50)) == false)
        let later = Task { await locks.acquire("k", within: .seconds(5)) }
        try await Task.sleep(for: .milliseconds(20))
        locks.release("k")
        // The timed-out waiter is gone from the line: the next one gets the turn.
        #expect(await later.value)
        locks.release("k")
        #expect(await locks.acquire("k", within: .milliseconds(10)))
    }
}
