import EnvironmentModel
import Locking

/// One Warren's own queue for the broker-held locks (`RecordLock`): operations of this process
/// on the same key take turns here first, first come first served, and only the one whose turn
/// it is asks the broker. Without it, every waiter of a busy key (one team's index, under a
/// portal creating many environments at once) re-declares the lock queue with growing pauses,
/// and a lock freed in between stays unused for up to a pause; with it, the next in line goes
/// the moment the last one releases. Other Warren instances still meet at the broker's lock.
package final class LocalLocks: Sendable {
    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var nextID = 0
        /// A key is present while someone holds it; its array is who waits, in order.
        var queues: [String: [Waiter]] = [:]
    }

    private let state = PThreadMutex(State())

    /// Waits for the key's turn for at most `limit`: true when it is this caller's (who must
    /// `release` it), false when the time ran out (then it holds nothing).
    package func acquire(_ key: String, within limit: Duration) async -> Bool {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let now = state.withLock { state -> Bool in
                guard state.queues[key] != nil else {
                    state.queues[key] = []
                    return true
                }
                state.queues[key]?.append(Waiter(id: id, continuation: continuation))
                return false
            }
            if now {
                continuation.resume(returning: true)
                return
            }
            // Whoever takes the waiter out of the queue resumes it: the release (its turn) or
            // this timer (its time is up), never both.
            Task { [weak self] in
                try? await Task.sleep(for: limit)
                let expired = self?.state.withLock { state -> Waiter? in
                    guard let index = state.queues[key]?.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.queues[key]?.remove(at: index)
                }
                expired?.continuation.resume(returning: false)
            }
        }
    }

    /// Hands the key to the next in line, or frees it.
    package func release(_ key: String) {
        let next = state.withLock { state -> Waiter? in
            guard let waiters = state.queues[key] else { return nil }
            guard let first = waiters.first else {
                state.queues[key] = nil
                return nil
            }
            state.queues[key] = Array(waiters.dropFirst())
            return first
        }
        next?.continuation.resume(returning: true)
    }
}
