import BrokerState
import EnvironmentModel
import Locking

/// The work an asynchronous operation goes on with after its answer has left: tracked so that
/// a stopping Warren can give it a moment to finish. What does not finish is not lost: its
/// record says `creating` or `deleting`, and the janitor of any Warren finishes it after the
/// grace, as it finishes what a crash interrupted.
public final class BackgroundWork: Sendable {
    private struct State {
        var next = 0
        var running: [Int: Task<Void, Never>] = [:]
    }

    private let state = PThreadMutex(State())

    public init() {}

    /// How many operations are still going on.
    public var count: Int { state.withLock { $0.running.count } }

    /// Starts `work` in a task of its own (not a child of the request's: the request is over).
    func start(_ work: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            let id = state.next
            state.next += 1
            state.running[id] = Task { [weak self] in
                await work()
                self?.state.withLock { _ = $0.running.removeValue(forKey: id) }
            }
        }
    }

    /// Waits until every operation has finished or `limit` has passed; true when all finished.
    public func drain(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if count == 0 { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return count == 0
    }
}
