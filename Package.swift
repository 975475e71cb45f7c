// swift-tools-version:6.0
import PackageDescription

// The request path, bottom to top; a module imports only those below it:
// CCurl -> CurlHTTP -> RabbitManagement -> EnvironmentModel -> BrokerState -> Provisioning -> WarrenAPI -> warren
// Provisioning is three layers: the model (what a team asks for and what Warren records: spec
// and its validation, record, naming, topology, roles, queue settings, release rules), the state
// Warren keeps on the broker (records and their claims, locks, team indexes, through a small
// BrokerSession), and the operations (create, update, credentials, teardown, reconcile, janitor).
// CurlHTTP is plain HTTP over libcurl (one multi handle on a thread of its own) and knows
// nothing of RabbitMQ. WarrenClient (the typed client for Warren's own API that
// swift-openapi-generator makes) sends its requests through CurlHTTP too; no module of the
// server imports it.
// RabbitManagement is imported internally below the API, so WarrenAPI sees Provisioning's own
// types only. HTTPServer stands beside them and knows nothing of RabbitMQ or the API. WireFormat
// (JSON values, the strict JSON parser, percent-encoding) is below both RabbitManagement and
// WarrenAPI. Locking (the one lock type, which ThreadSanitizer can see) is below everything.
let package = Package(
    name: "Warren",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "warren", targets: ["warren"]),
        .library(name: "WarrenClient", targets: ["WarrenClient"]),
        .executable(name: "warren-cli", targets: ["warren-cli"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(name: "Locking"),
        .target(name: "WireFormat"),
        .target(
            name: "HTTPServer",
            dependencies: ["Locking", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "CurlHTTP",
            dependencies: ["CCurl", "Locking", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "RabbitManagement",
            dependencies: [
                "CCurl",
                "CurlHTTP",
                "WireFormat",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "EnvironmentModel",
            dependencies: [
                "Locking",
                "RabbitManagement",
                "WireFormat",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "BrokerState",
            dependencies: [
                "EnvironmentModel",
                "Locking",
                "RabbitManagement",
                "WireFormat",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "Provisioning",
            dependencies: [
                "BrokerState",
                "EnvironmentModel",
                "Locking",
                "RabbitManagement",
                "WireFormat",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "WarrenAPI",
            dependencies: [
                "EnvironmentModel",
                "HTTPServer",
                "Locking",
                "Provisioning",
                "WireFormat",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .executableTarget(
            name: "warren",
            dependencies: [
                "BrokerState",
                "EnvironmentModel",
                "Locking",
                "WarrenAPI",
                "HTTPServer",
                "Provisioning",
                "RabbitManagement",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // Linux release only (a lean process; figures in BENCHMARKS.md): Apple's
            // linker takes no --no-export-dynamic, and macOS wants PIE. A position-dependent
            // executable needs no load-time relocations: with --static-swift-stdlib a PIE carries
            // about 1 MB of .rela.dyn that the loader reads and writes hundreds of KB of metadata
            // pointers with, all resident for the life of the process. No exported symbols either:
            // --static-swift-stdlib links with -export-dynamic, which puts every symbol of the
            // package's own modules (the runtime archives are excluded) in .dynsym/.dynstr for the
            // loader to page in, and nothing looks those up at run time. Debug, test and sanitizer
            // builds keep the toolchain's defaults.
            linkerSettings: [
                .unsafeFlags(["-Xclang-linker", "-no-pie", "-Xlinker", "--no-export-dynamic"],
                             .when(platforms: [.linux], configuration: .release)),
            ]
        ),
        .target(
            name: "WarrenClient",
            dependencies: [
                "CurlHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Sources/WarrenClient"
        ),
        // The command-line client for people (docs/cli.md): WarrenClient's generated client behind
        // a few commands, with exit codes a script can rely on. Nothing else depends on it.
        .executableTarget(
            name: "warren-cli",
            dependencies: [
                "WarrenClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ],
            path: "Sources/warren-cli"
        ),
        // What more than one test target uses (the in-memory FakeBroker). A plain target, not a
        // test target, so test targets can depend on it; nothing under Sources does. Its
        // `@testable import Provisioning` needs testability, which debug builds (`swift build`,
        // `--build-tests`, the sanitizer runs) enable; release builds (scripts/run.sh,
        // scripts/bench.sh, the Dockerfile) only ever build `--product warren`, so they never
        // compile it, and a bare `swift build -c release` would fail on it.
        .target(
            name: "WarrenTestSupport",
            dependencies: [
                "BrokerState",
                "EnvironmentModel",
                "Locking",
                "Provisioning",
                "RabbitManagement",
                "WireFormat",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/WarrenTestSupport"
        ),
        // The generated Swift client's round trip against a real Warren, run by
        // Tests/integration/test_generated_swift_client.py: an executable, because pytest owns the
        // Warren and broker it talks to. Built by `swift build --build-tests` beside warren.
        .executableTarget(
            name: "warren-client-roundtrip",
            dependencies: [
                "WarrenClient",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ],
            path: "Tests/ClientRoundTrip"
        ),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "Locking"]),
        .testTarget(
            name: "CurlHTTPTests",
            dependencies: [
                "CurlHTTP",
                "HTTPServer",
                "Locking",
                "WarrenClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        // The hand-written parts of WarrenClient (the middlewares), without a network.
        .testTarget(
            name: "WarrenClientTests",
            dependencies: [
                "WarrenClient",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .testTarget(name: "RabbitManagementTests", dependencies: ["Locking", "RabbitManagement", "WireFormat"]),
        .testTarget(
            name: "ProvisioningTests",
            dependencies: ["BrokerState", "EnvironmentModel", "Locking", "Provisioning", "RabbitManagement", "WireFormat", "WarrenTestSupport"]
        ),
        .testTarget(
            name: "WarrenAPITests",
            dependencies: ["WarrenAPI", "HTTPServer", "BrokerState", "EnvironmentModel", "Provisioning", "WireFormat", "WarrenTestSupport"]
        ),
        // The executable's own parts (the log writer); SwiftPM links an executable target into tests.
        .testTarget(name: "WarrenTests", dependencies: ["warren", .product(name: "Logging", package: "swift-log")]),
    ],
    swiftLanguageModes: [.v6]
)
