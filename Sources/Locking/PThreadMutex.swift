import Glibc

/// A value guarded by a pthread mutex: the one lock type of the package, for state that
/// threads share (an event loop's inbox, the token table, the lock table, test recorders).
///
/// Why not `Synchronization.Mutex`: ThreadSanitizer intercepts `pthread_mutex_lock`, but on
/// Linux it does not see the futex that `Mutex` falls back to when contended. Two threads
/// taking a `Mutex` in turn then look unordered to it, and it reports their accesses under the
/// lock as a race: a false positive that fails the sanitizer run and would hide real ones.
/// Only contended acquisitions take that path, so such reports come and go with timing: rare,
/// and so all the worse as false alarms. Uncontended, both locks cost one atomic
/// exchange.
public final class PThreadMutex<Value>: @unchecked Sendable {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inlinable
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
