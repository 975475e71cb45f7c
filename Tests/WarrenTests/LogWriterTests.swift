import Glibc
import Logging
import Testing
import WarrenAPI
@testable import warren

/// The batched log writer, writing into a temporary file the test reads back.
@Suite("Log writer")
struct LogWriterTests {
    /// A temporary file, removed when the test ends.
    final class TempFile {
        let path: String
        let fd: Int32

        init() {
            var template = Array("/tmp/warren-log-test-XXXXXX".utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }

        deinit {
            close(fd)
            unlink(path)
        }

        var lines: [String] {
            guard let file = fopen(path, "r") else { return [] }
            defer { fclose(file) }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&chunk, 1, chunk.count, file)
                if n == 0 { break }
                bytes.append(contentsOf: chunk[..<n])
            }
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        }
    }

    /// Lines from several threads at once, some past the buffer limit: after `flush()` every
    /// line is there, whole, and each thread's lines are in the order it logged them.
    @Test(arguments: [1 << 20, 512])
    func everyLineArrivesWholeAndInOrder(limit: Int) async throws {
        let file = TempFile()
        let writer = LogWriter(fd: file.fd, limit: limit)
        let threads = 4
        let perThread = 5_000
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<threads {
                group.addTask {
                    for index in 0..<perThread { writer.append(Array("t\(thread) \(index)\n".utf8)) }
                }
            }
        }
        writer.flush()
        let lines = file.lines
        #expect(lines.last == "")
        let written = lines.dropLast()
        #expect(written.count == threads * perThread)
        var next = [Int](repeating: 0, count: threads)
        for line in written {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let thread = Int(parts[0].dropFirst()), let index = Int(parts[1]),
                  (0..<threads).contains(thread) else {
                Issue.record("mangled line \(line.debugDescription)")
                return
            }
            #expect(index == next[thread], "thread \(thread) out of order")
            next[thread] = index + 1
        }
        #expect(next == [Int](repeating: perThread, count: threads))
    }

    /// What exit relies on: lines appended just before `flush()` (possibly while the writer
    /// thread is in the middle of a batch) are all written when it returns.
    @Test func flushWritesWhatIsStillBuffered() {
        let file = TempFile()
        // A long gathering pause keeps the writer busy with an early batch while flush runs.
        let writer = LogWriter(fd: file.fd, gatherNanoseconds: 200_000_000)
        for index in 0..<1_000 { writer.append(Array("line \(index)\n".utf8)) }
        writer.flush()
        #expect(file.lines.dropLast() == (0..<1_000).map { "line \($0)" })
    }

    /// A single line on an idle writer is written promptly, without a flush: an operator
    /// tailing the log sees a request as it is answered.
    @Test func aLoneLineIsWrittenWithoutAFlush() async throws {
        let file = TempFile()
        let writer = LogWriter(fd: file.fd)
        writer.append(Array("alone\n".utf8))
        for _ in 0..<200 where file.lines.first != "alone" {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(file.lines == ["alone", ""])
    }

    /// The handler's line through the writer: one JSON object with the fields operators and
    /// the integration tests read.
    @Test func handlerWritesOneJSONLinePerEvent() {
        let file = TempFile()
        let writer = LogWriter(fd: file.fd)
        var logger = Logger(label: "warren.test") { JSONLogHandler(label: $0, level: .info, writer: writer) }
        logger[metadataKey: "request_id"] = "r-1"
        logger.info("request", metadata: ["status": "200", "quote": "a\"b"])
        logger.debug("not at this level")
        writer.flush()
        let lines = file.lines
        #expect(lines.count == 2)
        let line = lines[0]
        #expect(line.hasPrefix(#"{"ts":""#))
        #expect(line.hasSuffix(#","level":"info","logger":"warren.test","msg":"request","quote":"a\"b","request_id":"r-1","status":"200"}"#))
    }

    /// The access line written straight into bytes is the line the handler writes for the same
    /// event through swift-log (timestamp aside), escaping included, so operators' parsers and
    /// the integration tests cannot tell them apart; and it follows the log level.
    @Test func accessLineIsTheHandlersLine() {
        let file = TempFile()
        let writer = LogWriter(fd: file.fd)
        let logger = Logger(label: "warren.http") { JSONLogHandler(label: $0, level: .info, writer: writer) }
        let entry = AccessLogEntry(
            requestID: "r\"1\n", team: "team-a", method: "GET", route: "/v1/environments/{id}", status: 404,
            durationMilliseconds: 1.25)
        JSONAccessLog(label: "warren.http", level: .info, writer: writer).record(entry)
        logger.info("request", metadata: [
            "request_id": .string(entry.requestID), "team": .string(entry.team), "method": .string(entry.method),
            "route": .string(entry.route), "status": "404", "duration_ms": "1.25",
        ])
        JSONAccessLog(label: "warren.http", level: .warning, writer: writer).record(entry)
        writer.flush()
        let lines = file.lines
        #expect(lines.count == 3)
        let withoutTime = lines.prefix(2).map { $0.drop(while: { $0 != "Z" }) }
        #expect(withoutTime[0] == withoutTime[1])
        #expect(lines[0].hasSuffix(#","msg":"request","duration_ms":"1.25","method":"GET","request_id":"r\"1\n","route":"/v1/environments/{id}","status":"404","team":"team-a"}"#))
    }
}
