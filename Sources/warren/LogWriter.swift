#if canImport(Glibc)
import Glibc
#endif

/// Log lines reach their descriptor (stderr) from one thread of its own, in batches. A thread
/// that logs, above all the HTTP event-loop thread with its access line per request, only
/// copies the line into a buffer; a write(2) per line cost that thread more than answering
/// `/healthz` did (BENCHMARKS.md).
///
/// - Order: lines are written in the order they were appended, never interleaved.
/// - Latency: an idle writer is woken by the next line and writes it at once. While lines keep
///   coming it gathers them for `gatherNanoseconds` between writes, so a busy server makes
///   about a thousand writes a second whatever its request rate, and no wake-up per line.
/// - Nothing is dropped: past `limit` buffered bytes (stderr is a pipe nobody drains) a
///   logging thread waits for the writer, as it would have waited in write(2). `flush()`,
///   called at exit, writes what is still buffered after the batch in progress.
///
/// `@unchecked Sendable`: every stored `var` is touched only under `mutex`.
final class LogWriter: @unchecked Sendable {
    static let standardError = LogWriter(fd: STDERR_FILENO)

    private let fd: Int32
    private let limit: Int
    private let gatherNanoseconds: Int
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Signalled when lines arrive for an idle writer.
    private let linesArrived: UnsafeMutablePointer<pthread_cond_t>
    /// Broadcast when the writer has finished a batch (room in the buffer; flush may proceed).
    private let batchWritten: UnsafeMutablePointer<pthread_cond_t>

    // Under `mutex`.
    private var pending: [UInt8] = []
    private var pendingLines = 0
    private var writerIdle = false
    private var writing = false
    /// False if the thread could not be started: then every line is written where it is logged.
    private var hasWriter = false

    init(fd: Int32, limit: Int = 1 << 20, gatherNanoseconds: Int = 1_000_000) {
        self.fd = fd
        self.limit = limit
        self.gatherNanoseconds = gatherNanoseconds
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        linesArrived = .allocate(capacity: 1)
        pthread_cond_init(linesArrived, nil)
        batchWritten = .allocate(capacity: 1)
        pthread_cond_init(batchWritten, nil)
        hasWriter = startWriter()
    }

    /// Queues one line (its bytes, newline included).
    func append(_ line: [UInt8]) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard hasWriter else {
            Self.writeAll(fd, line)
            return
        }
        while pending.count >= limit { pthread_cond_wait(batchWritten, mutex) }
        pending.append(contentsOf: line)
        pendingLines += 1
        if writerIdle {
            writerIdle = false
            pthread_cond_signal(linesArrived)
        }
    }

    /// Returns once every line appended before the call is written. Holds the lock while it
    /// writes, so it is meant for the end (exit), not for the request path.
    func flush() {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        // The writer's batch holds earlier lines than `pending`: it goes first.
        while writing { pthread_cond_wait(batchWritten, mutex) }
        Self.writeAll(fd, pending)
        pending.removeAll(keepingCapacity: true)
        pendingLines = 0
        pthread_cond_broadcast(batchWritten)
    }

    private func startWriter() -> Bool {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            let writer = Unmanaged<LogWriter>.fromOpaque(argument!).takeRetainedValue()
            writer.runWriter()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<LogWriter>.fromOpaque(box).release()
            return false
        }
        pthread_detach(thread)
        return true
    }

    /// The writer thread; runs until the process exits.
    private func runWriter() {
        var batch: [UInt8] = []
        pthread_mutex_lock(mutex)
        while true {
            while pending.isEmpty {
                writerIdle = true
                pthread_cond_wait(linesArrived, mutex)
            }
            writerIdle = false
            swap(&batch, &pending)
            let lines = pendingLines
            pendingLines = 0
            writing = true
            pthread_mutex_unlock(mutex)

            Self.writeAll(fd, batch)
            // A burst leaves no large buffer behind; the usual batch keeps its capacity.
            if batch.capacity > 64 * 1024 { batch = [] } else { batch.removeAll(keepingCapacity: true) }
            // More than one line in a batch means lines are coming faster than they are
            // written: gather for a while rather than write again at once.
            if lines > 1 { Self.sleep(nanoseconds: gatherNanoseconds) }

            pthread_mutex_lock(mutex)
            writing = false
            pthread_cond_broadcast(batchWritten)
        }
    }

    /// Errors other than EINTR drop the rest of the bytes: there is nowhere left to report them.
    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }

    private static func sleep(nanoseconds: Int) {
        var request = timespec(tv_sec: nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
