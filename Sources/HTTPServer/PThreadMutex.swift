import Glibc

/// A value guarded by a pthread mutex, for state that threads outside the concurrency pool
/// share (an event loop's inbox). ThreadSanitizer intercepts `pthread_mutex_lock`; it does not
/// see the futex inside `Synchronization.Mutex`, so it reported accesses under the latter from
/// two threads as races and failed the TSan suites (a false positive, but one that hides real
/// ones).
final class PThreadMutex<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
