import BrokerState
import EnvironmentModel
/// Bounded fan-out for bulk work on the management API. One management call per item, all at
/// once, is what took a broker down: a force-delete of an environment with 32,000 users started
/// 32,000 calls together (tens of thousands of timeouts and refused connections, and another
/// team's request answered 503 after a minute). Every bulk of broker calls goes through here, so
/// at most `limit` of them are in flight whatever the number of items.

/// Runs the operations, at most `limit` at a time, and waits for all of them (so nothing is
/// still in flight when a caller starts rolling back); then throws the first error, if any.
/// An operation that fails does not stop the others: each is one independent broker call, and
/// what the others did is done either way.
func concurrently(limit: Int, _ operations: [@Sendable () async throws -> Void]) async throws {
    precondition(limit > 0, "a bound on calls in flight must be positive")
    try await withThrowingTaskGroup(of: Void.self) { group in
        var pending = operations.makeIterator()
        var inFlight = 0
        while inFlight < limit, let operation = pending.next() {
            group.addTask(operation: operation)
            inFlight += 1
        }
        var firstError: (any Error)?
        while let result = await group.nextResult() {
            if case .failure(let error) = result, firstError == nil { firstError = error }
            // One finished, one more may start: the number in flight never exceeds `limit`.
            if let operation = pending.next() { group.addTask(operation: operation) }
        }
        if let firstError { throw firstError }
    }
}

/// Runs `body` for each element, at most `limit` at a time, as `concurrently(limit:_:)` does.
func eachConcurrently<Element: Sendable>(
    _ elements: some Sequence<Element>, limit: Int, _ body: @escaping @Sendable (Element) async throws -> Void
) async throws {
    try await concurrently(limit: limit, elements.map { element in { try await body(element) } })
}

extension Array {
    /// The elements in consecutive slices of at most `size` (the last may be shorter), for calls
    /// that take many names at once (`POST /api/users/bulk-delete`).
    func batches(of size: Int) -> [[Element]] {
        precondition(size > 0, "a batch holds at least one element")
        return stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}
