import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Signals delivered as Dispatch events rather than handlers, so the reaction can log, lock
/// and await like any other code.
enum Signals {
    /// A task that finishes with the first of `stopSignals`; SIGHUP runs `onHangUp` meanwhile.
    static func wait(for stopSignals: [Int32], onHangUp: @escaping @Sendable () -> Void) -> Task<Int32, Never> {
        let queue = DispatchQueue(label: "warren.signals")
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for number in stopSignals + [SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                if number == SIGHUP { onHangUp() } else { continuation.yield(number) }
            }
            source.resume()
            sources.append(source)
        }
        let retained = SendableBox(sources)
        return Task {
            for await number in stream {
                _ = retained
                return number
            }
            return 0
        }
    }
}

/// Keeps the signal sources alive for as long as the waiting task runs.
private final class SendableBox: @unchecked Sendable {
    let value: [any DispatchSourceSignal]
    init(_ value: [any DispatchSourceSignal]) { self.value = value }
}

/// Start-up errors go straight to stderr: logging is not set up yet when they happen, or it
/// cannot be trusted to be.
enum FileHandleStderr {
    static func write(_ text: String) {
        // Lines logged before the error come before it.
        LogWriter.standardError.flush()
        var bytes = Array(text.utf8)
        _ = Glibc.write(STDERR_FILENO, &bytes, bytes.count)
    }
}
