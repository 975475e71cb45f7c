// swift-tools-version:6.0
// A minimal Hummingbird 2 server for `make bench`: the reference Warren's HTTP layer is
// compared with. It answers GET /healthz exactly as Warren does. Not part of the product:
// nothing in the root Package.swift depends on it.
import PackageDescription

let package = Package(
    name: "hummingbird-reference",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "HummingbirdReference",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
