// The Slurm action against a real slurmctld and slurmd (ci/slurm-world), when
// FAULTLINE_SLURM_CONF names its slurm.conf (`make test-slurm` and .ci/run set it up): an
// idempotent drain, a node drained by someone else left alone, release of our own only, and a
// controller that is down giving a failure, never a false success.

import Foundation
import Net
import Testing

@testable import Remediation

private let slurmConf = ProcessInfo.processInfo.environment["FAULTLINE_SLURM_CONF"]

@Suite(.enabled(if: slurmConf != nil, "needs a Slurm world: make test-slurm"), .serialized)
struct RealSlurmTests {
    let conf = slurmConf ?? ""
    var action: SlurmAction { SlurmAction(timeout: .seconds(30), environment: ["SLURM_CONF": conf], runner: SubprocessRunner()) }

    func scontrol(_ arguments: String...) throws -> CommandResult {
        try SubprocessRunner().run(["scontrol"] + arguments, environment: ["SLURM_CONF": conf], timeout: .seconds(30))
    }

    func request(_ node: String) -> QuarantineRequest {
        QuarantineRequest(node: node, intent: "\(node)@2026-11-22T05:00:00Z", faultClass: "link.loss", component: "\(node)/0~leaf-s0-r0", reason: "test")
    }

    @Test func drainIsIdempotentAndReleaseBringsItBack() throws {
        let first = try action.quarantine(request("gpu001"))
        #expect(first.quarantined && first.ours)
        #expect(first.reason == "faultline:gpu001@2026-11-22T05:00:00Z link.loss")
        let again = try action.quarantine(request("gpu001"))
        #expect(again == first)
        #expect(try scontrol("show", "node", "gpu001").standardOutput.contains("+DRAIN"))
        let released = try action.release(node: "gpu001")
        #expect(!released.quarantined)
        #expect(try !action.release(node: "gpu001").quarantined)  // nothing to do, no error
    }

    @Test func aNodeDrainedBySomeoneElseIsLeftAlone() throws {
        _ = try scontrol("update", "NodeName=gpu002", "State=DRAIN", "Reason=maintenance by ops")
        defer { _ = try? scontrol("update", "NodeName=gpu002", "State=RESUME") }
        #expect(throws: ActionError.self) { try action.quarantine(request("gpu002")) }
        #expect(throws: ActionError.self) { try action.release(node: "gpu002") }
        let state = try action.status(node: "gpu002")
        #expect(state.quarantined && !state.ours && state.reason == "maintenance by ops")
    }

    @Test func aDownControllerFailsAndTheDrainSurvivesItsRestart() throws {
        let directory = URL(fileURLWithPath: conf).deletingLastPathComponent().path
        _ = try action.quarantine(request("gpu003"))
        let pid = try String(contentsOfFile: directory + "/slurmctld.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try SubprocessRunner().run(["kill", pid], timeout: .seconds(5))
        for _ in 0..<50 where FileManager.default.fileExists(atPath: "/proc/\(pid)") { Thread.sleep(forTimeInterval: 0.1) }
        // Down: no false success either way.
        let quick = SlurmAction(timeout: .seconds(15), environment: ["SLURM_CONF": conf], runner: SubprocessRunner())
        #expect(throws: ActionError.self) { try quick.release(node: "gpu003") }
        #expect(throws: ActionError.self) { try quick.quarantine(request("gpu001")) }
        // Back up (state kept): our drain is still there, and still ours.
        _ = try SubprocessRunner().run(["slurmctld"], environment: ["SLURM_CONF": conf], timeout: .seconds(30))
        var state: SchedulerState?
        for _ in 0..<100 where state == nil {
            state = try? action.status(node: "gpu003")
            if state == nil { Thread.sleep(forTimeInterval: 0.2) }
        }
        #expect(state?.quarantined == true && state?.ours == true)
        #expect(try !action.release(node: "gpu003").quarantined)
    }
}
