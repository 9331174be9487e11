// The executor killed with SIGKILL at random points, over 200 times, then run again until it
// finishes: no action lost, none done twice, and the scheduler's state, the intent log and the
// hash-chained audit agree. The scheduler is a script keeping its state in files under a lock, and
// logging every change it makes, so a change done twice would show.

import FleetModel
import Foundation
import Store
import Testing

@Suite("executor under kill -9", .serialized)
struct ExecutorDrillTests {
    /// Quarantine six nodes, release three, quarantine one of those again (a new intent).
    static let decisions: [(kind: String, node: String, time: Int64)] =
        (1...6).map { ("quarantine", "gpu-000\($0)", 1_800_000_000) }
        + (1...3).map { ("release", "gpu-000\($0)", 1_800_000_600) }
        + [("quarantine", "gpu-0001", 1_800_001_200)]

    static func decisionLines() -> String {
        decisions.map { decision in
            let time = Timestamp(secondsSinceEpoch: decision.time)
            // The id of a release is the quarantine's: the policy names both after the quarantine.
            let quarantinedAt = decision.kind == "release" ? Timestamp(secondsSinceEpoch: 1_800_000_000) : time
            return "{\"time\": \"\(time)\", \"decision\": \"\(decision.kind)\", \"id\": \"\(decision.node)@\(quarantinedAt)\", "
                + "\"node\": \"\(decision.node)\", \"component\": \"\(decision.node)/0\", \"class\": \"gpu.down\", \"reason\": \"drill\"}"
        }.joined(separator: "\n") + "\n"
    }

    /// The scheduler: one state file per node out of service; every change appended to `changes`.
    static func schedulerScript(in directory: URL) throws -> String {
        let path = directory.appendingPathComponent("scheduler.sh").path
        let d = directory.path
        try """
        #!/bin/sh
        exec 9>'\(d)/lock'
        flock 9
        state='\(d)/out-'"$FAULTLINE_NODE"
        case "$1" in
          quarantine) if [ ! -f "$state" ]; then printf '%s' "$FAULTLINE_REASON" > "$state"; echo "quarantine $FAULTLINE_NODE $FAULTLINE_INTENT" >> '\(d)/changes'; fi ;;
          release) if [ -f "$state" ]; then rm "$state"; echo "release $FAULTLINE_NODE" >> '\(d)/changes'; fi ;;
          status) if [ -f "$state" ]; then printf '{"quarantined": true, "reason": "%s"}' "$(cat "$state")"; else echo '{"quarantined": false}'; fi ;;
        esac
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    @Test("over 200 kills at random points: nothing lost, nothing done twice, state and audit agree")
    func killNineDrill() throws {
        let executable = try faultlineExecutable()
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        var trials = 0
        // Intents a kill left pending that the next run reconciled: proof the kills hit mid-action.
        var reconciled = 0
        while kills < 200 {
            trials += 1
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("drill-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let script = try Self.schedulerScript(in: directory)
            let config = directory.appendingPathComponent("serve.conf").path
            try "action = exec\nexec-script = \(script)\naction-timeout-seconds = 10\n".write(
                toFile: config, atomically: true, encoding: .utf8)
            let decisionsPath = directory.appendingPathComponent("decisions.ndjson").path
            try Self.decisionLines().write(toFile: decisionsPath, atomically: true, encoding: .utf8)
            let db = directory.appendingPathComponent("store.db").path

            var finished = false
            var runs = 0
            while !finished {
                runs += 1
                #expect(runs < 200, "the executor never finished")
                if runs >= 200 { return }
                let process = Process()
                process.executableURL = executable
                process.arguments = ["executor", "run", "--db", db, "--decisions", decisionsPath, "--config", config]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                // Kill somewhere in the run (a whole run takes some tens of milliseconds here),
                // unless it is already over; a few runs are left to finish.
                let delay = Double(UInt64.random(in: 0..<120, using: &generator)) / 1000
                if runs < 6 { Thread.sleep(forTimeInterval: delay) }
                if process.isRunning && runs < 6 {
                    kill(process.processIdentifier, SIGKILL)
                    kills += 1
                }
                process.waitUntilExit()
                finished = process.terminationReason == .exit
                if finished { #expect(process.terminationStatus == 0, "executor run failed after \(runs) runs") }
            }

            // Every change exactly once, in order per node; the final state as decided.
            let changes = (try? String(contentsOfFile: directory.appendingPathComponent("changes").path, encoding: .utf8)) ?? ""
            let lines = changes.split(separator: "\n").map(String.init)
            #expect(lines.count == Self.decisions.count, "changes: \(lines)")
            #expect(Set(lines).count == lines.count, "a change was done twice: \(lines)")
            for n in 1...6 {
                let out = FileManager.default.fileExists(atPath: directory.appendingPathComponent("out-gpu-000\(n)").path)
                #expect(out == (n == 1 || n > 3), "gpu-000\(n)")
            }
            let store = try Store(path: db)
            let intents = try store.allIntents()
            #expect(intents.count == Self.decisions.count)
            #expect(intents.allSatisfy { $0.state == .done })
            #expect(try store.verifyAudit() >= 2 * Self.decisions.count)
            reconciled += try store.auditEntries().count {
                $0.entry.hasPrefix("{\"event\": \"reconciled\"") || $0.entry.hasPrefix("{\"event\": \"retry\"")
            }
        }
        #expect(kills >= 200 && trials >= 1)
        #expect(reconciled > 0, "no kill ever left an intent pending")
        print("executor drill: \(kills) kills in \(trials) trials, \(reconciled) pending intents reconciled")
    }
}
