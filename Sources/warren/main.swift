import Dispatch
import EnvironmentModel
import FoundationEssentials
import HTTPServer
import Logging
import Metrics
import Prometheus
import Provisioning
import RabbitManagement
import WarrenAPI

#if canImport(Glibc)
import Glibc
#endif

// Wiring only: read the configuration, build the layers bottom-up, serve until SIGTERM/SIGINT.

// Before anything big is allocated: the janitor's listings must not stay in malloc's arenas.
FreedMemory.returnLargeBlocksAtOnce()

let environment = ProcessInfo.processInfo.environment
let config: Configuration
do {
    config = try Configuration.fromEnvironment(environment)
} catch {
    FileHandleStderr.write("warren: \(error.variable): \(error.reason)\n")
    exit(2)
}

let level = Logger.Level(rawValue: config.logLevel) ?? .info
LoggingSystem.bootstrap { JSONLogHandler(label: $0, level: level) }
// Log lines are written by a thread of their own (LogWriter); every way out of the process but
// a crash or SIGKILL goes through exit(), which writes what is still buffered.
atexit { LogWriter.standardError.flush() }
let metrics = PrometheusCollectorRegistry()
MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics))
let logger = Logger(label: "warren")

let tokens: TokenStore
do {
    tokens = try TokenStore(path: config.tokensFile, allowsNoTeams: config.allowNoTeams)
} catch {
    let hint = (error as? TokenStore.LoadError)?.givesNoTeam == true ? " (set WARREN_ALLOW_NO_TEAMS=1 to serve without teams)" : ""
    FileHandleStderr.write("warren: WARREN_TOKENS_FILE: \(error)\(hint)\n")
    exit(2)
}

var blueprints = Blueprints()
if let path = config.blueprintsFile {
    do {
        blueprints = try Blueprints(path: path)
    } catch {
        FileHandleStderr.write("warren: WARREN_BLUEPRINTS_FILE: \(error)\n")
        exit(2)
    }
}
// Blueprints with ceilings of their own are tiers: their environments get those instead. A
// blueprint that asks for more than its ceilings would have every create refused: not served.
let tiers = Dictionary(uniqueKeysWithValues: blueprints.all.compactMap { blueprint in
    blueprint.ceilings(over: config.ceilings).map { (blueprint.name, $0) }
})
for blueprint in blueprints.all {
    if let problem = (tiers[blueprint.name] ?? config.ceilings).problems(in: blueprint.spec(named: "blueprint-check")).first {
        FileHandleStderr.write("warren: WARREN_BLUEPRINTS_FILE: blueprint \(blueprint.name): \(problem.field) \(problem.reason) (give it ceilings of its own, or ask for less)\n")
        exit(2)
    }
}

let platforms: PlatformStore?
do {
    platforms = try config.osbPlatformsFile.map { try PlatformStore(path: $0) }
} catch {
    FileHandleStderr.write("warren: WARREN_OSB_PLATFORMS_FILE: \(error)\n")
    exit(2)
}

var managementConfig = ManagementConfiguration(
    baseURLs: config.managementURLs, username: config.managementUser, password: config.managementPassword)
managementConfig.requestTimeout = .milliseconds(config.managementTimeoutMilliseconds)
managementConfig.caFile = config.managementCAFile
managementConfig.clientCertFile = config.managementClientCertFile
managementConfig.clientKeyFile = config.managementClientKeyFile
let management: ManagementClient
do {
    management = try ManagementClient(configuration: managementConfig, logger: Logger(label: "warren.management"))
} catch {
    FileHandleStderr.write("warren: WARREN_MANAGEMENT_URL: \(error)\n")
    exit(2)
}

/// The metrics closure is made before the server it reports on.
final class ServerBox: @unchecked Sendable {
    // Set once, before the server starts serving; read only by requests it serves.
    var value: HTTPServer?
}
let serverBox = ServerBox()

let provisioner = Provisioner(
    admin: management, serviceUser: config.managementUser, logger: Logger(label: "warren.provisioning"),
    maxEnvironmentsPerTeam: config.maxEnvironmentsPerTeam, createDeadline: .seconds(config.createDeadlineSeconds),
    longestCall: .milliseconds(config.longestCallMilliseconds),
    ceilings: config.ceilings, tiers: tiers)
let janitorWork: Janitor
do {
    janitorWork = try Janitor(provisioner: provisioner, grace: .seconds(config.sweepGraceSeconds))
} catch {
    FileHandleStderr.write("warren: WARREN_SWEEP_GRACE_SECONDS: \(error); got \(config.sweepGraceSeconds) s\n")
    exit(2)
}
let api = WarrenAPI(
    provisioner: provisioner, tokens: tokens,
    endpoint: AMQPEndpoint(host: config.amqpHost, port: config.amqpPort), logger: Logger(label: "warren.http"),
    blueprints: blueprints,
    metrics: {
        Gauge(label: "warren_http_open_connections").record(serverBox.value?.openConnections ?? 0)
        var text: [UInt8] = []
        metrics.emit(into: &text)
        return text
    },
    platforms: platforms, osbSecret: config.osbSecret, osbPreviousSecret: config.osbPreviousSecret,
    accessLog: JSONAccessLog(label: "warren.http", level: level))

// Before serving: is this the secret the broker's /v2 records were sealed with? (OSBSealAudit)
if config.osbPlatformsFile != nil {
    let audit = OSBSealAudit(secret: config.osbSecret, previousSecret: config.osbPreviousSecret, platforms: platforms)
    if let refusal = await audit.startUpCheck(provisioner, allowUnverified: config.osbAllowUnverifiedSeals, logger: logger) {
        FileHandleStderr.write("warren: WARREN_OSB_SECRET_FILE: \(refusal)\n")
        exit(2)
    }
}

var serverConfig = HTTPServerConfiguration()
serverConfig.host = config.listenHost
serverConfig.port = config.listenPort
serverConfig.maxBodyBytes = config.maxBodyBytes
serverConfig.maxConnections = config.maxConnections
serverConfig.headerTimeout = .milliseconds(config.headerTimeoutMilliseconds)
serverConfig.bodyTimeout = .milliseconds(config.bodyTimeoutMilliseconds)
serverConfig.idleTimeout = .milliseconds(config.idleTimeoutMilliseconds)
let server = HTTPServer(configuration: serverConfig, responder: api, logger: Logger(label: "warren.server"))
serverBox.value = server
do {
    try server.start()
} catch {
    FileHandleStderr.write("warren: WARREN_LISTEN: cannot listen on \(config.listenHost):\(config.listenPort): \(error)\n")
    exit(2)
}
logger.info("listening", metadata: [
    "address": "\(config.listenHost):\(server.port)", "management": "\(config.managementURLs.joined(separator: ","))",
    "teams": "\(tokens.teamCount)", "platforms": "\(platforms?.platformCount ?? 0)",
])

// Finishes creates and deletes that a crash of any Warren interrupted (see Janitor).
let janitor = Task {
    await janitorWork
        // What the sweep's listings took is free then; without this, malloc keeps it.
        .run(every: .seconds(config.sweepIntervalSeconds), afterSweep: FreedMemory.release)
}

// The broker's alarms and each team's use for /metrics, in a task of its own (see UsageCollector).
let usage = Task {
    await UsageCollector(provisioner: provisioner).run(every: .seconds(config.usageIntervalSeconds))
}

// SIGHUP: each file is read again and swapped in whole, or (unreadable, malformed, a digest on
// two lines, no team or platform left) not at all; the counts say which table is in force.
let stop = Signals.wait(for: [SIGTERM, SIGINT]) {
    logger.info("reloading tokens")
    do {
        try tokens.reload()
        logger.info("tokens reloaded", metadata: ["teams": "\(tokens.teamCount)"])
    } catch {
        logger.error("tokens file not reloaded; the old tokens stay in force", metadata: ["error": "\(error)"])
    }
    if let platforms {
        do {
            try platforms.reload()
            logger.info("platforms reloaded", metadata: ["platforms": "\(platforms.platformCount)"])
        } catch {
            logger.error("platforms file not reloaded; the old platforms stay in force", metadata: ["error": "\(error)"])
        }
    }
}
let received = await stop.value
logger.info("shutting down", metadata: ["signal": "\(received)"])
janitor.cancel()
usage.cancel()
await server.shutdown()
// Asynchronous creates and deletes answered already get up to 5 s to finish; what is left then
// is finished by the janitor of this or another Warren (its record says where it stopped).
if !(await provisioner.background.drain(within: .seconds(5))) {
    logger.warning("asynchronous work left for the janitor", metadata: ["operations": "\(provisioner.background.count)"])
}
await janitor.value
await usage.value
management.shutdown()
logger.info("stopped")
exit(0)
