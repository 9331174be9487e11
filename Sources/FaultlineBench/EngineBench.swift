// `faultline-bench --engine SCENARIO`: how long the engine takes to close one window of a whole
// fleet (decode every pair's sketch, judge it, localize, track findings) on one core, and the
// process's peak memory. The reports come from the simulator beforehand and are not timed; the
// issue's target is one window of a 100k-GPU fleet (scenarios/large/fleet-100k-gpus.json) in ≤ 2 s
// with ≤ 4 GiB. docs/benchmarks.md keeps the figures.

import Engine
import FleetModel
import Foundation
import Simulation

/// The process's peak resident memory (VmHWM), in bytes; 0 where /proc does not say.
func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return kilobytes * 1024
    }
    return 0
}

/// CPU time this thread has used, in seconds: on a loaded machine, what the work itself cost.
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func runEngineBench(scenarioPath: String) throws {
    let clock = ContinuousClock()
    let scenarioURL = URL(fileURLWithPath: scenarioPath)
    let scenario = try Scenario(json: Data(contentsOf: scenarioURL))
    let topology = try scenario.loadTopology(relativeTo: scenarioURL.deletingLastPathComponent())
    var simulator: FleetSimulator?
    let planning = try clock.measure { simulator = try FleetSimulator(scenario: scenario, topology: topology) }
    let fleet = simulator!
    let nodes = topology.nodes.count
    let endpoints = topology.endpoints.count
    let plannedPairs = fleet.pinglist.pairs.count
    print(
        "faultline-bench --engine: \(machineDescription()); release build; scenario \(scenario.name): "
            + "\(nodes) nodes, \(endpoints) endpoints, \(plannedPairs) planned pairs "
            + "(\(String(format: "%.1f", Double(plannedPairs) / Double(endpoints))) per endpoint); "
            + "pinglist planned in \(String(format: "%.1f", seconds(planning))) s")

    var engine = Engine(topology: topology, rules: .defaults, windowSeconds: scenario.windowSeconds)
    engine.rollUp = CommandLine.arguments.contains("--rollup")  // as the service runs it
    let closeDelay = Int64(scenario.windowSeconds) * Int64(1 + Rules.defaults.graceWindows)
    print("window  reports  pairs      simulate (s)  ingest (s)  close (s)  close CPU (s)  make (s)  findings  peak RSS (MiB)   rollUp: \(engine.rollUp)")
    for window in 0..<scenario.windows {
        var reports: [Report] = []
        let simulating = clock.measure { reports = fleet.reports(window: window) }
        let pairs = reports.reduce(0) { $0 + $1.pairs.count }
        let reportCount = reports.count
        let ingesting = clock.measure { for report in reports { engine.ingest(report) } }
        var findings: [Finding] = []
        // The timed part: the window closes (decode, judge, baselines, localize, hysteresis).
        let cpuBefore = threadCPUSeconds()
        let closing = clock.measure {
            findings = engine.advance(to: fleet.windowStart(window).adding(seconds: closeDelay))
        }
        let closingCPU = threadCPUSeconds() - cpuBefore
        // The rollups the service asks for (`Engine.rollUp`) are made during the close, as the
        // pairs are read: the close's time includes them. Their share, measured on its own:
        // WindowRollup.make over the same reports (lookups by name: an upper bound).
        var rollup: WindowRollup?
        let rolling = clock.measure {
            rollup = WindowRollup.make(window: fleet.windowStart(window), reports: reports, topology: topology)
        }
        sink &+= UInt64(rollup?.classes.count ?? 0) &+ UInt64(engine.takeRollups().count)
        reports = []
        print(
            String(
                format: "%6d  %7d  %9d  %12.2f  %10.2f  %9.2f  %13.2f  %10.2f  %8d  %14.0f", window, reportCount, pairs,
                seconds(simulating), seconds(ingesting), seconds(closing), closingCPU, seconds(rolling), findings.count,
                Double(peakResidentBytes()) / 1_048_576))
        for finding in findings { print("        \(finding.event) \(finding.component) \(finding.faultClass)") }
    }
    print("(window 0 also computes every pair's route once; the later windows are the steady state)")
}
