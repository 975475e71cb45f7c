// swift-tools-version:6.0
import PackageDescription

// The request path, bottom to top; a module imports only those below it:
// CCurl -> RabbitManagement -> Provisioning -> WarrenAPI -> warren
// HTTPServer stands beside them and knows nothing of RabbitMQ or the API. WireFormat (JSON
// values, the strict JSON parser, percent-encoding) is below both RabbitManagement and
// WarrenAPI, so the API reaches the broker only through Provisioning.
let package = Package(
    name: "Warren",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "warren", targets: ["warren"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(name: "WireFormat"),
        .target(
            name: "HTTPServer",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "RabbitManagement",
            dependencies: [
                "CCurl",
                "WireFormat",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Provisioning",
            dependencies: [
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
                "HTTPServer",
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
                "WarrenAPI",
                "HTTPServer",
                "Provisioning",
                "RabbitManagement",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer"]),
        .testTarget(name: "RabbitManagementTests", dependencies: ["RabbitManagement", "WireFormat"]),
        .testTarget(name: "ProvisioningTests", dependencies: ["Provisioning", "RabbitManagement", "WireFormat"]),
        .testTarget(name: "WarrenAPITests", dependencies: ["WarrenAPI", "HTTPServer", "Provisioning", "RabbitManagement", "WireFormat"]),
        // The executable's own parts (the log writer); SwiftPM links an executable target into tests.
        .testTarget(name: "WarrenTests", dependencies: ["warren", .product(name: "Logging", package: "swift-log")]),
    ],
    swiftLanguageModes: [.v6]
)
