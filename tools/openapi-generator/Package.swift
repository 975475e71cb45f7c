// swift-tools-version:6.0
import PackageDescription

// Builds apple/swift-openapi-generator, pinned, to make the Swift client Warren ships
// (Sources/WarrenClient/Generated) from openapi.yaml: scripts/openapi-clients.sh runs it.
// The generated code is committed, so the package's own build never needs the generator (its
// first build takes minutes); `make test` checks that the committed code is current.
let package = Package(
    name: "OpenAPIGeneratorTool",
    dependencies: [
        .package(url: "https://github.com/apple/swift-openapi-generator", exact: "1.14.3"),
    ],
    targets: []
)
