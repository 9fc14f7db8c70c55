// swift-tools-version:6.0
import PackageDescription

/// Planted bugs for the simulator (`Simulations/planted-bugs.sh`): MINIZK_PLANTED_BUGS=A,B defines
/// MINIZK_BUG_A and MINIZK_BUG_B in ZKCore, ZKStorage, ZKRecipesCore and SparkLiteCore only, so that only they and what
/// depends on them rebuild (ZKStorage depends on ZKCore, so it rebuilds anyway).
/// (`swift build -Xswiftc -DMINIZK_BUG_A` works too, but rebuilds every package.)
let plantedBugs: [SwiftSetting] = (Context.environment["MINIZK_PLANTED_BUGS"] ?? "")
    .split(separator: ",").map { .define("MINIZK_BUG_\($0)") }

let package = Package(
    name: "MiniZK",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "ZKProtocol", targets: ["ZKProtocol"]),
        .library(name: "ZKCore", targets: ["ZKCore"]),
        .library(name: "ZKStorage", targets: ["ZKStorage"]),
        .library(name: "ZKServerFormats", targets: ["ZKServerFormats"]),
        .library(name: "ZKServer", targets: ["ZKServer"]),
        .library(name: "ZKSimulator", targets: ["ZKSimulator"]),
        .library(name: "ZKTesting", targets: ["ZKTesting"]),
        .library(name: "ZKClientCore", targets: ["ZKClientCore"]),
        .library(name: "ZKClient", targets: ["ZKClient"]),
        .library(name: "ZKRecipesCore", targets: ["ZKRecipesCore"]),
        .library(name: "ZKRecipes", targets: ["ZKRecipes"]),
        .library(name: "SparkLiteCore", targets: ["SparkLiteCore"]),
        .library(name: "SparkLite", targets: ["SparkLite"]),
        .executable(name: "minizk", targets: ["minizk"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "ZKProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "ZKCore",
            dependencies: [
                "ZKProtocol",
                .product(name: "HashTreeCollections", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: plantedBugs
        ),
        .systemLibrary(
            name: "CSQLite",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(
            name: "ZKStorage",
            dependencies: [
                "ZKCore", "ZKProtocol", "CSQLite",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ],
            swiftSettings: plantedBugs
        ),
        .target(
            name: "ZKSimulator",
            dependencies: [
                "ZKCore", "ZKProtocol", "ZKStorage", "ZKClientCore", "ZKRecipesCore", "SparkLiteCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // What a server reads from outside besides client frames and peer messages (whose codec
        // is in ZKStorage): zoo.cfg and JAAS files. No sockets, TLS or metrics.
        .target(
            name: "ZKServerFormats",
            dependencies: ["ZKCore", "ZKProtocol", "ZKStorage", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "ZKServer",
            dependencies: [
                "ZKCore", "ZKProtocol", "ZKStorage", "ZKServerFormats",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "ZKOperations",
            dependencies: [
                "ZKServer", "ZKCore", "ZKProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ZKTesting",
            dependencies: [
                "ZKServer", "ZKCore", "ZKProtocol", "ZKStorage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ZKClientCore",
            dependencies: [
                "ZKProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "ZKClient",
            dependencies: [
                "ZKClientCore", "ZKProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "ZKRecipesCore", dependencies: ["ZKProtocol"], swiftSettings: plantedBugs),
        .target(
            name: "ZKRecipes",
            dependencies: [
                "ZKRecipesCore", "ZKClient",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .target(name: "SparkLiteCore", dependencies: ["ZKRecipesCore", "ZKProtocol"], swiftSettings: plantedBugs),
        .target(
            name: "SparkLite",
            dependencies: [
                "SparkLiteCore", "ZKRecipes", "ZKRecipesCore", "ZKClient",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "zkrecipes-interop", dependencies: ["ZKRecipes", "ZKClient"]),
        .executableTarget(
            name: "minizk",
            dependencies: [
                "ZKServer", "ZKCore", "ZKProtocol", "ZKStorage", "ZKSimulator", "ZKClient", "ZKTesting", "ZKOperations",
                "SparkLite", "SparkLiteCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ZKProtocolTests", dependencies: ["ZKProtocol"]),
        .testTarget(
            name: "ZKCoreTests",
            dependencies: ["ZKCore", "ZKProtocol", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(name: "ZKSimulatorTests", dependencies: ["ZKSimulator", "ZKCore", "ZKProtocol", "ZKStorage"]),
        .testTarget(
            name: "MiniZKSimulations",
            dependencies: ["ZKSimulator", "ZKCore", "ZKProtocol", "ZKStorage"],
            path: "Simulations/Tests"
        ),
        .testTarget(
            name: "ZKTestingTests",
            dependencies: [
                "ZKTesting", "ZKServer", "ZKCore", "ZKProtocol", "ZKClient", "ZKRecipes", "ZKRecipesCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ZKOperationsTests",
            dependencies: [
                "ZKOperations", "ZKServer", "ZKCore", "ZKProtocol", "ZKStorage", "ZKTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .testTarget(name: "ZKStorageTests", dependencies: ["ZKStorage", "ZKCore", "ZKProtocol"]),
        .testTarget(
            name: "ZKServerTests",
            dependencies: [
                "ZKServer", "ZKServerFormats", "ZKCore", "ZKProtocol", "ZKStorage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "ZKClientTests",
            dependencies: [
                "ZKClient", "ZKClientCore", "ZKServer", "ZKCore", "ZKProtocol", "ZKTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "ZKRecipesCoreTests", dependencies: ["ZKRecipesCore", "ZKProtocol"]),
        .testTarget(name: "SparkLiteCoreTests", dependencies: ["SparkLiteCore", "ZKRecipesCore", "ZKProtocol"]),
        .testTarget(
            name: "SparkLiteTests",
            dependencies: ["SparkLite", "SparkLiteCore", "ZKTesting", "ZKClient", "ZKRecipesCore", "ZKProtocol", "ZKSimulator"]
        ),
        .testTarget(
            name: "ZKRecipesTests",
            dependencies: [
                "ZKRecipes", "ZKRecipesCore", "ZKClient", "ZKServer", "ZKCore", "ZKProtocol", "ZKTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

/// libFuzzer targets and the light AddressSanitizer build (`scripts/fuzz-libfuzzer.sh`,
/// `scripts/sanitizers.sh address --light`), only with MINIZK_FUZZ=1, in their own scratch path
/// (.build-fuzz): the normal build never sees this. The package shrinks to the modules the fuzz
/// binary needs (no sockets, TLS, metrics or HTTP to build), the `minizk-fuzz` executable and
/// the test targets that need nothing more. The decoders' modules get libFuzzer's coverage
/// instrumentation (`-sanitize=fuzzer` when compiling: no libFuzzer is linked, so the test
/// bundle keeps its main; ASan's runtime has empty coverage callbacks); only `minizk-fuzz` links
/// libFuzzer. AddressSanitizer comes from the command line (`swift build --sanitize=address`),
/// so one build gives both the fuzz binary and an ASan test bundle.
if Context.environment["MINIZK_FUZZ"] == "1" {
    let instrumented: Set<String> = ["ZKProtocol", "ZKCore", "ZKStorage", "ZKServerFormats", "ZKClientCore"]
    let kept = instrumented.union([
        "CSQLite", "ZKRecipesCore", "SparkLiteCore", "ZKSimulator",
        "ZKProtocolTests", "ZKCoreTests", "ZKStorageTests", "ZKSimulatorTests", "MiniZKSimulations",
        "ZKRecipesCoreTests", "SparkLiteCoreTests",
    ])
    package.targets.removeAll { !kept.contains($0.name) }
    package.products.removeAll { !kept.contains($0.name) }
    // The packages none of these use are not even fetched.
    let used = ["swift-nio", "swift-collections", "swift-crypto"]
    package.dependencies.removeAll { dependency in
        guard case .sourceControl(_, let location, _) = dependency.kind else { return false }
        return !used.contains { location.hasSuffix("/\($0).git") }
    }
    for target in package.targets where instrumented.contains(target.name) {
        target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-sanitize=fuzzer"])]
    }
    package.targets.append(
        .executableTarget(
            name: "minizk-fuzz",
            dependencies: [
                "ZKProtocol", "ZKCore", "ZKStorage", "ZKServerFormats", "ZKClientCore",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Fuzz/Sources/minizk-fuzz",
            swiftSettings: [.unsafeFlags(["-sanitize=fuzzer"])],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer"])]
        )
    )
    package.products.append(.executable(name: "minizk-fuzz", targets: ["minizk-fuzz"]))
}
