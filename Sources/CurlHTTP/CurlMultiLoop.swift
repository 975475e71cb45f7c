import CCurl
import Glibc
import Locking
import Logging

/// One libcurl multi handle, driven by one dedicated thread.
///
/// Blocking I/O must stay off Swift's cooperative pool (it has one thread per core), so every
/// transfer runs here: callers hand a `TransferRequest` to `perform`, which configures an easy
/// handle (`EasyTransfer`) on the caller's thread and suspends on a continuation; the loop thread
/// adds it to the multi handle, runs `curl_multi_perform`, drains `curl_multi_info_read` and
/// resumes the continuation. Keep-alive connections live in the multi handle's connection cache
/// and are shared by all transfers.
///
/// Threading rule: `multi` and `inFlight` belong to the loop thread. Other threads touch only
/// `shared` (under its lock) and call `curl_multi_wakeup`, which libcurl allows from any thread;
/// they call it while holding the lock and only while `accepting` is true, so no wakeup can race
/// with the loop's final `curl_multi_cleanup`.
public final class CurlMultiLoop: @unchecked Sendable {
    private struct Shared {
        var pending: [EasyTransfer] = []
        var accepting = true
        var stopping = false
        /// Bumped by every cancellation so the loop scans for cancelled transfers only then.
        var cancelGeneration = 0
    }

    private let multi: UnsafeMutableRawPointer
    private let shared = PThreadMutex(Shared())
    private var inFlight: [UnsafeMutableRawPointer: EasyTransfer] = [:]
    private let logger: Logger
    private let thread = PThreadMutex<pthread_t?>(nil)

    /// - Parameter maxConnections: size of the keep-alive connection cache (CURLMOPT_MAXCONNECTS).
    ///   There is deliberately no per-host cap (CURLMOPT_MAX_HOST_CONNECTIONS): transfers over the
    ///   cap wait inside libcurl with their timeouts running, which would turn load into spurious
    ///   timeouts; callers bound their own concurrency instead.
    public init(maxConnections: Int, logger: Logger) throws(CurlError) {
        try CurlGlobal.ensureInitialized()
        guard let multi = curl_multi_init() else {
            throw CurlError(kind: .handle, summary: "libcurl could not create a multi handle")
        }
        self.multi = multi
        self.logger = logger
        _ = warren_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, maxConnections)
        try start()
    }

    private func start() throws(CurlError) {
        // The thread owns one strong reference until `run` returns, so the loop outlives its users.
        let context = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { context in
            let loop = Unmanaged<CurlMultiLoop>.fromOpaque(context!).takeRetainedValue()
            loop.run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<CurlMultiLoop>.fromOpaque(context).release()
            curl_multi_cleanup(multi)
            throw CurlError(
                kind: .thread,
                summary: "could not start the libcurl thread (\(String(cString: strerror(rc))))")
        }
        thread.withLock { $0 = tid }
    }

    // MARK: - callers' side

    /// Runs one transfer to completion on the loop thread. Throws only when the transfer cannot
    /// be set up (libcurl refuses a handle or an option); once it is, failures, cancellation of
    /// the calling task and shutdown are outcomes.
    public func perform(_ request: TransferRequest) async throws(CurlError) -> TransferOutcome {
        let transfer = try EasyTransfer(request)
        return await perform(transfer)
    }

    /// Never throws: the continuation is resumed exactly once on every path.
    func perform(_ transfer: EasyTransfer) async -> TransferOutcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                transfer.setContinuation(continuation)
                submit(transfer)
            }
        } onCancel: {
            cancel(transfer)
        }
    }

    private func submit(_ transfer: EasyTransfer) {
        let accepted = shared.withLock { shared in
            guard shared.accepting else { return false }
            shared.pending.append(transfer)
            curl_multi_wakeup(multi)
            return true
        }
        // The loop has stopped: it will never see this transfer, so finish it here.
        if !accepted { transfer.complete(.shutdown) }
    }

    private func cancel(_ transfer: EasyTransfer) {
        transfer.cancelRequested.store(true, ordering: .releasing)
        shared.withLock { shared in
            shared.cancelGeneration &+= 1
            if shared.accepting { curl_multi_wakeup(multi) }
        }
    }

    /// Fails every pending and running transfer with `.shutdown` and stops the thread. Waits for
    /// the thread to exit (a few milliseconds), so the multi handle is gone when this returns.
    /// Idempotent.
    public func shutdown() {
        shared.withLock { shared in
            guard !shared.stopping else { return }
            shared.stopping = true
            if shared.accepting { curl_multi_wakeup(multi) }
        }
        // Only the first caller joins; the loop thread itself must never join itself.
        guard let tid = thread.withLock({ tid in defer { tid = nil }; return tid }) else { return }
        if pthread_equal(tid, pthread_self()) != 0 {
            pthread_detach(tid)
        } else {
            pthread_join(tid, nil)
        }
    }

    // MARK: - loop thread

    private func run() {
        warren_set_current_thread_name("warren-curl")
        var cancelGenerationSeen = 0
        while true {
            let (newTransfers, stopping, cancelGeneration) = shared.withLock { shared in
                let taken = shared.pending
                shared.pending.removeAll()
                // Once `accepting` is false nobody else calls curl_multi_wakeup, so the multi
                // handle can be cleaned up below.
                if shared.stopping { shared.accepting = false }
                return (taken, shared.stopping, shared.cancelGeneration)
            }
            if stopping {
                for transfer in newTransfers { transfer.complete(.shutdown) }
                for (handle, transfer) in inFlight {
                    curl_multi_remove_handle(multi, handle)
                    transfer.complete(.shutdown)
                }
                inFlight.removeAll()
                break
            }

            for transfer in newTransfers { add(transfer) }
            if cancelGeneration != cancelGenerationSeen {
                cancelGenerationSeen = cancelGeneration
                removeCancelled()
            }

            var running: Int32 = 0
            let performed = curl_multi_perform(multi, &running)
            if performed != CURLM_OK {
                logger.error("curl_multi_perform failed", metadata: ["curlm_code": "\(performed.rawValue)"])
            }
            drainCompleted()

            // curl shortens the wait to its own next timeout; a wakeup ends it early.
            var ready: Int32 = 0
            let polled = curl_multi_poll(multi, nil, 0, 1000, &ready)
            if polled != CURLM_OK {
                logger.error("curl_multi_poll failed", metadata: ["curlm_code": "\(polled.rawValue)"])
                usleep(10_000)  // do not spin if polling keeps failing
            }
        }
        curl_multi_cleanup(multi)
    }

    private func add(_ transfer: EasyTransfer) {
        guard let handle = transfer.easyHandle else {
            transfer.complete(.shutdown)
            return
        }
        if transfer.cancelRequested.load(ordering: .acquiring) {
            transfer.complete(.cancelled)
            return
        }
        let added = curl_multi_add_handle(multi, handle)
        guard added == CURLM_OK else {
            var result = transfer.result(curlCode: CURLE_FAILED_INIT)
            result.curlDetail = "curl_multi_add_handle failed: \(String(cString: curl_multi_strerror(added)))"
            transfer.complete(.finished(result))
            return
        }
        inFlight[handle] = transfer
    }

    private func removeCancelled() {
        for (handle, transfer) in inFlight where transfer.cancelRequested.load(ordering: .acquiring) {
            curl_multi_remove_handle(multi, handle)
            inFlight[handle] = nil
            transfer.complete(.cancelled)
        }
    }

    private func drainCompleted() {
        var queued: Int32 = 0
        while let message = curl_multi_info_read(multi, &queued) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
            // Read the result before remove_handle: the message is invalid afterwards.
            let code = warren_curl_msg_result(message)
            curl_multi_remove_handle(multi, handle)
            guard let transfer = inFlight.removeValue(forKey: handle) else { continue }
            transfer.complete(.finished(transfer.result(curlCode: code)))
        }
    }
}
