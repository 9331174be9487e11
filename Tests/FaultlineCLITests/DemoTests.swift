// `faultline demo` end to end, as separate processes on real sockets: the correlator and one agent per
// node of an 8-node fleet with 1 s windows; each injected fault found, exactly the faulty nodes
// quarantined (dry-run) and released after healing; the correlator killed and restarted mid-run
// losing no report and recording the findings a replay gives; and every process the demo started
// gone after it ends, after Ctrl-C, and after the demo itself is killed.

import Foundation
import Net
import Testing

/// Processes whose command line mentions `text` (the demo's directory is in every child's).
private func processes(mentioning text: String) -> [Int32] {
    let own = getpid()
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int32.init).filter { pid in
        guard pid != own,
            let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty
        else { return false }
        return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(text)
    }
}

/// Waits up to `seconds` for no process to mention `text`; whether none does.
private func noProcesses(mentioning text: String, within seconds: Double) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if processes(mentioning: text).isEmpty { return true }
        try await Task.sleep(for: .milliseconds(200))
    }
    return processes(mentioning: text).isEmpty
}

/// A demo started in the background (through `ChildProcess`, which reaps it itself), its output
/// going to a file in its directory.
private struct RunningDemo {
    let directory: String
    let process: ChildProcess

    init() throws {
        directory = NSTemporaryDirectory() + "faultline-demo-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        process = try ChildProcess(
            [
                try faultlineExecutable().path, "demo", "--dir", directory, "--nodes", "8", "--rails", "2",
                "--window-seconds", "1",
            ], output: directory + "/demo.out", errors: directory + "/demo.out")
    }

    var output: String { (try? String(contentsOfFile: directory + "/demo.out", encoding: .utf8)) ?? "" }

    /// The exit status once it ends, within `seconds`; nil if it did not.
    func exitStatus(within seconds: Int) -> Int32? {
        guard process.wait(timeout: .seconds(seconds)), let status = process.poll(), status & 0x7F == 0 else {
            return nil
        }
        return (status >> 8) & 0xFF
    }

    /// Waits for the output to contain `text`.
    func waitFor(_ text: String, seconds: Double) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if output.contains(text) { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    func remove() {
        if process.isRunning {
            process.signal(SIGKILL)
            _ = process.wait(timeout: .seconds(5))
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("faultline demo: the whole system as separate processes", .serialized)
struct DemoTests {
    @Test("every fault found, exactly the faulty nodes quarantined and released, a correlator restart losing nothing, no process left")
    func fullRun() async throws {
        let demo = try RunningDemo()
        defer { demo.remove() }
        let status = demo.exitStatus(within: 180)
        let output = demo.output
        #expect(status == 0, "\(output)")
        // The faults of an 8-node fleet: gpu-0002's rail 1 slow, gpu-0005/1's link lossy, gpu-0007 dead.
        for fault in [
            "slow GPU rail: gpu-0002/1", "lossy access link of gpu-0005/1", "dead node: gpu-0007",
        ] {
            let summary = try #require(output.range(of: "Summary:"), "\(output)")
            let line = output[summary.upperBound...].split(separator: "\n").drop { !$0.contains(fault) }
            #expect(line.dropFirst().first?.contains("found at") == true, "\(fault) in \(output)")
        }
        #expect(output.contains("quarantined: gpu-0002, gpu-0005, gpu-0007; released: "), "\(output)")
        for node in ["gpu-0002", "gpu-0005", "gpu-0007"] {
            #expect(output.contains("decision release \(node)"), "\(node) released in \(output)")
        }
        #expect(output.contains("restart  the correlator is back on"), "\(output)")
        #expect(try await noProcesses(mentioning: demo.directory, within: 5))
        // The run's report, written by the demo: the three quarantines in its log, each released.
        #expect(output.contains("The run's fleet health report (docs/reports.md): \(demo.directory)/report.html"))
        let report = try String(contentsOfFile: demo.directory + "/report.html", encoding: .utf8)
        #expect(report.hasPrefix("<!DOCTYPE html>") && report.components(separatedBy: "<svg").count - 1 == 6)
        for node in ["gpu-0002", "gpu-0005", "gpu-0007"] {
            #expect(report.contains("<tr><td>\(node)</td><td>20"), "\(node) in the report's quarantine log")
        }
        #expect(!report.contains("still out"))

        // Nothing lost across the correlator's kill -9 and restart: every node but the dead one has a
        // stored report for every window from its first to its last (the agents spooled meanwhile).
        let faultline = try faultlineExecutable().path
        let directory = demo.directory
        let export = try SubprocessRunner(outputLimit: 64 << 20).run(
            [faultline, "db", "export", "--db", directory + "/faultline.db"], timeout: .seconds(60))
        #expect(export.succeeded, "\(export.standardError)")
        var windows: [String: [Int]] = [:]
        for line in export.standardOutput.split(separator: "\n") {
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let start = try #require(ISO8601DateFormatter().date(from: report["windowStart"] as? String ?? ""))
            windows[report["node"] as? String ?? "", default: []].append(Int(start.timeIntervalSince1970))
        }
        #expect(windows.count == 8)
        for (node, starts) in windows where node != "gpu-0007" {
            let sorted = starts.sorted()
            #expect(sorted.count == sorted.last! - sorted.first! + 1, "\(node): a window missing")
        }
        // The killed agent, started again, resumed: it reported in the last windows too.
        let latest = try #require(windows.values.compactMap { $0.max() }.max())
        #expect((windows["gpu-0007"]?.max() ?? 0) >= latest - 3)
        // The findings recorded live, across the restart, are those a replay of the stored reports gives.
        try Data(export.standardOutput.utf8).write(to: URL(fileURLWithPath: directory + "/reports.ndjson"))
        let replay = try SubprocessRunner(outputLimit: 64 << 20).run(
            [
                faultline, "replay", "--topology", directory + "/topology.json", "--input",
                directory + "/reports.ndjson", "--rules", directory + "/rules", "--json",
            ], timeout: .seconds(60))
        #expect(replay.succeeded, "\(replay.standardError)")
        let replayed = replay.standardOutput.split(separator: "\n").filter { $0.contains("\"event\": ") }
        let live = try String(contentsOfFile: directory + "/findings.ndjson", encoding: .utf8).split(separator: "\n")
        #expect(!live.isEmpty)
        #expect(replayed == live)

        // The same straight from the store (its recorded topology and rules): findings and decisions
        // byte for byte those recorded live, across the correlator's kill -9.
        let compare = try SubprocessRunner(outputLimit: 64 << 20).run(
            [faultline, "replay", "--db", directory + "/faultline.db", "--compare"], timeout: .seconds(60))
        #expect(compare.succeeded, "\(compare.standardOutput)\(compare.standardError)")
        #expect(compare.standardOutput.hasPrefix("identical: "), "\(compare.standardOutput)")
        // What if the fleet had allowed fewer nodes out at once: the comparison names the
        // quarantines that would have been held instead, and fails.
        let whatIf = directory + "/what-if-rules"
        try FileManager.default.createDirectory(atPath: whatIf, withIntermediateDirectories: true)
        let demoRules = try String(contentsOfFile: directory + "/rules/50-demo.rules", encoding: .utf8)
        #expect(demoRules.contains("max-quarantined-share = 0.4"))
        try demoRules.replacingOccurrences(of: "max-quarantined-share = 0.4", with: "max-quarantined-share = 0.15")
            .write(toFile: whatIf + "/50-demo.rules", atomically: true, encoding: .utf8)
        let changed = try SubprocessRunner(outputLimit: 64 << 20).run(
            [faultline, "replay", "--db", directory + "/faultline.db", "--compare", "--rules", whatIf],
            timeout: .seconds(60))
        #expect(changed.exitStatus == 1, "\(changed.standardOutput)\(changed.standardError)")
        #expect(changed.standardOutput.contains("decisions that change (id: live -> replay):"))
        #expect(changed.standardOutput.contains("quarantine, release -> held"), "\(changed.standardOutput)")
        // The incident as a bundle, from the third finding on (16 windows of warm-up before it):
        // on its own it replays that range as live had it.
        let third = try #require(
            try JSONSerialization.jsonObject(with: Data(live[min(2, live.count - 1)].utf8)) as? [String: Any])
        let from = try #require(third["window"] as? String)
        let bundle = directory + "/incident.db"
        let exported = try SubprocessRunner().run(
            [faultline, "incident", "export", "--db", directory + "/faultline.db", "--from", from, "--to",
             "2099-01-01T00:00:00Z", "-o", bundle], timeout: .seconds(60))
        #expect(exported.succeeded, "\(exported.standardError)")
        let bundled = try SubprocessRunner(outputLimit: 64 << 20).run(
            [faultline, "replay", "--db", bundle, "--from", from, "--to", "2099-01-01T00:00:00Z", "--compare"],
            timeout: .seconds(60))
        #expect(bundled.succeeded, "\(bundled.standardOutput)\(bundled.standardError)")
        // The whole run as an incident page: its timeline and the lossy link's leaf in the maps.
        let page = try SubprocessRunner(outputLimit: 64 << 20).run(
            [faultline, "incident", "html", "--db", directory + "/faultline.db", "--from", "2000-01-01T00:00:00Z",
             "--to", "2099-01-01T00:00:00Z"], timeout: .seconds(60))
        #expect(page.succeeded, "\(page.standardError)")
        #expect(page.standardOutput.hasPrefix("<!DOCTYPE html>"))
        for node in ["gpu-0002", "gpu-0005", "gpu-0007"] {
            #expect(page.standardOutput.contains("<td>quarantine (done)</td><td>\(node)</td>"), "\(node) in the incident page")
        }
        #expect(page.standardOutput.contains("<td>finding opened</td><td>gpu-0007</td><td>node.unreachable</td>"))
        #expect(page.standardOutput.contains("leaf-s2-r1"))  // gpu-0005/1's leaf
    }

    @Test("Ctrl-C (SIGINT) stops the demo and every process it started")
    func interrupted() async throws {
        let demo = try RunningDemo()
        defer { demo.remove() }
        #expect(try await demo.waitFor("window   2 closed", seconds: 30), "\(demo.output)")
        #expect(processes(mentioning: demo.directory).count >= 9)  // the correlator and 8 agents
        demo.process.signal(SIGINT)
        #expect(demo.exitStatus(within: 30) == 0, "\(demo.output)")
        #expect(demo.output.contains("interrupted: stopping every process of the demo"))
        #expect(try await noProcesses(mentioning: demo.directory, within: 5))
    }

    @Test("the demo killed outright: its watchdog stops every process it started")
    func killed() async throws {
        let demo = try RunningDemo()
        defer { demo.remove() }
        #expect(try await demo.waitFor("window   2 closed", seconds: 30), "\(demo.output)")
        demo.process.signal(SIGKILL)
        #expect(demo.process.wait(timeout: .seconds(5)))
        // The watchdog polls every second, then the agents get 5 s to send their last window.
        #expect(try await noProcesses(mentioning: demo.directory, within: 15))
    }
}
