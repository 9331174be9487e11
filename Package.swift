// swift-tools-version:6.0
// Faultline: finds the broken part of a GPU cluster's RDMA fabric and takes its node out of service.
// No package dependencies: Foundation, Dispatch, Synchronization and the toolchain's test libraries,
// plus libsqlite3 and libibverbs through system-library module maps.
import PackageDescription

let package = Package(
    name: "Faultline",
    products: [
        .executable(name: "faultline", targets: ["faultline"]),
        .executable(name: "faultline-bench", targets: ["FaultlineBench"]),
    ],
    targets: [
        // C boundaries: module maps and shims only.
        .systemLibrary(
            name: "CSQLite3",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CIBVerbs",
            pkgConfig: "libibverbs",
            providers: [.apt(["libibverbs-dev"])]
        ),

        // The quantile sketch: DDSketch semantics and its protobuf codec. Imports nothing of ours.
        .target(name: "QuantileSketch"),
        // The fleet's vocabulary: identifiers, topology, probe paths. Pure; Foundation for JSON only.
        .target(name: "FleetModel", dependencies: ["QuantileSketch"]),
        // The pure core: windows, pair statistics, baselines, localization, findings. No I/O.
        .target(name: "Engine", dependencies: ["FleetModel", "QuantileSketch"]),
        // The remediation policy: findings and operator commands in, decisions out. No I/O.
        .target(name: "Policy", dependencies: ["Engine", "FleetModel"]),
        // The remediation actions (slurm, kubernetes, exec, webhook, dry-run), each verifying what it did, and
        // the executor with its intent log and hash-chained audit in the store.
        .target(name: "Remediation", dependencies: ["Net", "FleetModel", "Engine", "Policy", "Store"]),
        // Synthetic data: seeded generators and latency distributions for tests, demo and benchmarks.
        .target(name: "Simulation", dependencies: ["FleetModel", "QuantileSketch", "Engine"]),
        // The correlator's SQLite store: connection, statements, migrations, the event log and
        // derived tables.
        .target(name: "Store", dependencies: ["CSQLite3", "FleetModel", "QuantileSketch", "Engine"]),
        // The command line: every subcommand as a type, parsed by hand.
        .target(
            name: "FaultlineCLI",
            dependencies: [
                "QuantileSketch", "FleetModel", "Engine", "Policy", "Remediation", "Simulation", "Store", "Service", "Net", "Verbs",
                "Probe", "Agent", "Reports",
            ]),
        // POSIX edges: sockets, the HTTP/1.1 server and a blocking client, subprocesses. Imports
        // nothing of ours.
        .target(name: "Net"),
        // The correlator service: ingest, the engine on one serial queue, the API, metrics, tokens.
        .target(
            name: "Service", dependencies: ["Net", "Store", "Engine", "Policy", "Remediation", "FleetModel", "QuantileSketch"]),
        // Owning wrappers over libibverbs behind VerbsAPI, the real one and a seeded fake.
        .target(name: "Verbs", dependencies: ["CIBVerbs"]),
        // The node agent: sysfs discovery (NICs, GPUs, rails) and the verbs probers.
        .target(name: "Probe", dependencies: ["Verbs"]),
        // The running agent: the probe scheduler (a pure state machine), the UDP transport and
        // responder, fault injection, the spool and uploader, reloads, /metrics, and the host health
        // that rides along in its reports (read from sysfs through Probe).
        .target(name: "Agent", dependencies: ["FleetModel", "QuantileSketch", "Net", "Verbs", "Probe"]),
        // The reports' charts as inline SVG: scales with nice ticks, colour scales, line charts and
        // heatmaps with their legends. Imports nothing of ours.
        .target(name: "Charts"),
        // The weekly fleet health report: its figures from the store's rollups, findings and intent
        // log, rendered as HTML (inline SVG and CSS), Markdown with SVG files, or JSON.
        .target(name: "Reports", dependencies: ["Charts", "Store", "Engine", "Policy", "FleetModel", "QuantileSketch"]),
        .executableTarget(name: "faultline", dependencies: ["FaultlineCLI"]),
        .executableTarget(
            name: "FaultlineBench",
            dependencies: ["QuantileSketch", "FleetModel", "Engine", "Simulation", "Net", "Service", "Store", "Reports"]),

        .testTarget(
            name: "QuantileSketchTests", dependencies: ["QuantileSketch", "Simulation"],
            exclude: ["Fixtures"]  // read from the source tree by path: sketches DataDog's ddsketch wrote
        ),
        .testTarget(
            name: "FaultlineCLITests",
            dependencies: [
                "FaultlineCLI", "faultline", "Engine", "FleetModel", "QuantileSketch", "Simulation", "Store", "Net",
            ]
        ),
        .testTarget(name: "SystemLibraryTests", dependencies: ["CSQLite3", "CIBVerbs"]),
        .testTarget(name: "FleetModelTests", dependencies: ["FleetModel"]),
        .testTarget(name: "ChartsTests", dependencies: ["Charts"]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Store", "Engine", "FleetModel", "QuantileSketch"]),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "Engine", "FleetModel"]),
        .testTarget(name: "RemediationTests", dependencies: ["Remediation", "Net", "Policy", "Store", "FleetModel"]),
        .testTarget(name: "NetTests", dependencies: ["Net"]),
        .testTarget(name: "VerbsTests", dependencies: ["Verbs"]),
        .testTarget(
            name: "AgentTests",
            dependencies: ["Agent", "FleetModel", "QuantileSketch", "Net", "Verbs", "Probe", "Engine"]),
        .testTarget(
            name: "ProbeTests", dependencies: ["Probe", "Verbs"],
            exclude: ["Fixtures"]  // sysfs trees of small files and symlinks, read by #filePath
        ),
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "Service", "Net", "Store", "Engine", "FleetModel", "QuantileSketch", "Simulation", "Policy",
                "Remediation",
            ]),
        .testTarget(
            name: "StoreTests",
            dependencies: ["Store", "CSQLite3", "FleetModel", "QuantileSketch", "Engine", "Simulation"]),
        .testTarget(
            name: "EngineTests", dependencies: ["Engine", "FleetModel", "QuantileSketch", "Simulation"]),
        .testTarget(
            name: "SimulationTests", dependencies: ["Simulation", "Engine", "FleetModel", "QuantileSketch"]
        ),
    ]
)

// One place for the settings every Swift target shares.
for target in package.targets where target.type != .system {
    target.swiftSettings =
        (target.swiftSettings ?? []) + [
            .swiftLanguageMode(.v6),
            .enableUpcomingFeature("ExistentialAny"),
            .enableUpcomingFeature("MemberImportVisibility"),
            // Lets release builds inline small functions across modules (the sketch's insert
            // path into its callers); a compiler optimization, no effect on behaviour.
            .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
        ]
}
