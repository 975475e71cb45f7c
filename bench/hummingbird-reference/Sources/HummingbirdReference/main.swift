// GET /healthz -> 200 {"status":"ok"}, Content-Type: application/json; the same body and
// content type as Warren's /healthz. Listens on HB_LISTEN (default 127.0.0.1:8081).
import Foundation
import Hummingbird
import Logging

let listen = ProcessInfo.processInfo.environment["HB_LISTEN"] ?? "127.0.0.1:8081"
let parts = listen.split(separator: ":")
guard parts.count == 2, let port = Int(parts[1]) else {
    FileHandle.standardError.write(Data("HB_LISTEN must be HOST:PORT\n".utf8))
    exit(2)
}

let body = ByteBuffer(string: #"{"status":"ok"}"#)
let router = Router()
router.get("healthz") { _, _ -> Response in
    Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
}

var logger = Logger(label: "hummingbird-reference")
logger.logLevel = .warning
let app = Application(
    router: router,
    configuration: .init(address: .hostname(String(parts[0]), port: port), serverName: nil),
    logger: logger
)
try await app.runService()
