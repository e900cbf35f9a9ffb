// swift-tools-version:5.9
// GridLink: the Swift face of gridlink-core. `cargo xtask ios` (at the repository root) builds
// GridLinkFFI.xcframework (the Rust library for devices and simulators, with the C header
// uniffi generates) and writes Sources/GridLink/gridlink.swift (the generated bindings);
// neither is committed.
import PackageDescription

let package = Package(
    name: "GridLink",
    platforms: [.iOS(.v15)],
    products: [
        .library(name: "GridLink", targets: ["GridLink"]),
    ],
    targets: [
        .binaryTarget(name: "gridlinkFFI", path: "GridLinkFFI.xcframework"),
        .target(name: "GridLink", dependencies: ["gridlinkFFI"], path: "Sources/GridLink"),
    ]
)
