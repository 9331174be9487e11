// The actions against fakes that behave as the real thing does, lies included: a fake scontrol
// whose exit codes do not tell the truth (as Slurm 22.05's do), a script, a webhook server.

import Foundation
import Net
import Synchronization
import Testing

@testable import Remediation

/// `scontrol show node` / `scontrol update` over a table of nodes, with Slurm 22.05's exit codes:
/// RESUME on an idle node fails; RESUME on UNKNOWN+DRAIN fails yet clears the drain; DRAIN with
/// another reason overwrites it; DRAIN without a reason is refused; a down controller times out.
final class FakeSlurm: CommandRunner, @unchecked Sendable {
    struct Node {
        var base: String  // IDLE, MIXED, UNKNOWN, DOWN
        var drain = false
        var reason = ""
    }
    private let state = Mutex<(nodes: [String: Node], calls: [[String]], controllerDown: Bool)>(([:], [], false))

    init(nodes: [String: Node]) { state.withLock { $0.nodes = nodes } }

    var calls: [[String]] { state.withLock { $0.calls } }
    func node(_ name: String) -> Node? { state.withLock { $0.nodes[name] } }
    func set(_ name: String, _ node: Node) { state.withLock { $0.nodes[name] = node } }
    func controller(down: Bool) { state.withLock { $0.controllerDown = down } }

    func run(_ arguments: [String], environment: [String: String], input: [UInt8], timeout: Duration) throws(SystemCallError) -> CommandResult {
        state.withLock { world in
            world.calls.append(arguments)
            if world.controllerDown { return CommandResult(exitStatus: nil, signal: 9, standardOutput: "", timedOut: true) }
            let args = Array(arguments.dropFirst())
            if args.count == 3, args[0] == "show", args[1] == "node" {
                guard let node = world.nodes[args[2]] else {
                    return CommandResult(exitStatus: 1, standardOutput: "", standardError: "Node \(args[2]) not found\n")
                }
                let state = node.base + (node.drain ? "+DRAIN" : "")
                var text = "NodeName=\(args[2]) Arch=x86_64 CoresPerSocket=1\n   CPUAlloc=0 CPUTot=1 CPULoad=0.00\n"
                text += "   State=\(state) ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A\n"
                text += "   Partitions=debug\n"
                if !node.reason.isEmpty { text += "   Reason=\(node.reason) [root@2026-11-22T05:00:00]\n" }
                return CommandResult(exitStatus: 0, standardOutput: text)
            }
            guard args.first == "update", let nameArg = args.first(where: { $0.hasPrefix("NodeName=") }),
                let stateArg = args.first(where: { $0.hasPrefix("State=") })
            else { return CommandResult(exitStatus: 1, standardOutput: "", standardError: "bad arguments") }
            let name = String(nameArg.dropFirst(9))
            guard var node = world.nodes[name] else {
                return CommandResult(exitStatus: 1, standardOutput: "", standardError: "Invalid node name specified")
            }
            let reason = args.first(where: { $0.hasPrefix("Reason=") }).map { String($0.dropFirst(7)) }
            var status: Int32 = 0
            switch stateArg.dropFirst(6) {
            case "DRAIN":
                guard let reason else {
                    return CommandResult(exitStatus: 1, standardOutput: "", standardError: "You must specify a reason")
                }
                node.drain = true
                node.reason = reason
            case "RESUME":
                if !node.drain || node.base == "UNKNOWN" { status = 1 }  // lies both ways
                node.drain = false
                node.reason = ""
            case "UNDRAIN":
                if node.base == "UNKNOWN" { status = 1 }
                node.drain = false
                node.reason = ""
            default: status = 1
            }
            world.nodes[name] = node
            return CommandResult(exitStatus: status, standardOutput: "")
        }
    }
}

private func request(_ node: String) -> QuarantineRequest {
    QuarantineRequest(
        node: node, intent: "\(node)@2026-11-22T05:00:00Z", faultClass: "gpu.down", component: "\(node)/3",
        reason: "gpu.down on rail 3")
}

struct SlurmActionTests {
    @Test func drainIsVerifiedAndIdempotent() throws {
        let slurm = FakeSlurm(nodes: ["gpu001": .init(base: "IDLE")])
        let action = SlurmAction(runner: slurm)
        let state = try action.quarantine(request("gpu001"))
        #expect(state.quarantined && state.ours)
        #expect(slurm.node("gpu001")?.reason == "faultline:gpu001@2026-11-22T05:00:00Z gpu.down")
        let updates = slurm.calls.filter { $0[1] == "update" }
        #expect(updates == [["scontrol", "update", "NodeName=gpu001", "State=DRAIN", "Reason=faultline:gpu001@2026-11-22T05:00:00Z gpu.down"]])
        // Again (a retried intent): nothing changes, no second update.
        _ = try action.quarantine(request("gpu001"))
        #expect(slurm.calls.filter { $0[1] == "update" }.count == 1)
    }

    @Test func aNodeDrainedBySomeoneElseIsLeftAlone() throws {
        let slurm = FakeSlurm(nodes: ["gpu002": .init(base: "IDLE", drain: true, reason: "bad DIMM, ticket 4711")])
        let action = SlurmAction(runner: slurm)
        #expect(throws: ActionError(.notOurs, "slurm: gpu002 is already out of service (bad DIMM, ticket 4711): left alone")) {
            try action.quarantine(request("gpu002"))
        }
        #expect(throws: ActionError.self) { try action.release(node: "gpu002") }
        #expect(slurm.node("gpu002")?.reason == "bad DIMM, ticket 4711")
        #expect(slurm.calls.allSatisfy { $0[1] == "show" })
    }

    @Test func releaseTrustsTheStateNotTheExitCode() throws {
        // RESUME on UNKNOWN+DRAIN exits 1 yet clears the drain.
        let slurm = FakeSlurm(nodes: ["gpu003": .init(base: "UNKNOWN", drain: true, reason: "faultline:x gpu.down")])
        let state = try SlurmAction(runner: slurm).release(node: "gpu003")
        #expect(!state.quarantined)
        #expect(slurm.calls.filter { $0[1] == "update" }.map { $0[3] } == ["State=RESUME"])
        // Not quarantined: release changes nothing.
        _ = try SlurmAction(runner: slurm).release(node: "gpu003")
        #expect(slurm.calls.filter { $0[1] == "update" }.count == 1)
    }

    @Test func aDrainThatDoesNotTakeIsNotASuccess() throws {
        final class Ignoring: CommandRunner, @unchecked Sendable {
            let slurm = FakeSlurm(nodes: ["gpu004": .init(base: "IDLE")])
            func run(_ arguments: [String], environment: [String: String], input: [UInt8], timeout: Duration) throws(SystemCallError) -> CommandResult {
                // scontrol says 0 and does nothing.
                arguments[1] == "update" ? CommandResult(exitStatus: 0, standardOutput: "") : try slurm.run(arguments, environment: environment, timeout: timeout)
            }
        }
        #expect(throws: ActionError.self) { try SlurmAction(runner: Ignoring()).quarantine(request("gpu004")) }
    }

    @Test func aDownControllerIsAFailureNeverASuccess() {
        let slurm = FakeSlurm(nodes: ["gpu005": .init(base: "IDLE")])
        slurm.controller(down: true)
        #expect(throws: ActionError.self) { try SlurmAction(runner: slurm).quarantine(request("gpu005")) }
        #expect(throws: ActionError.self) { try SlurmAction(runner: slurm).status(node: "gpu005") }
    }

    @Test func unknownNodesAndHostlistsAreRefused() {
        let slurm = FakeSlurm(nodes: [:])
        #expect(throws: ActionError.self) { try SlurmAction(runner: slurm).status(node: "gpu999") }
        for name in ["gpu[001-004]", "gpu001,gpu002", "gpu 001", ""] {
            #expect(throws: ActionError.self) { try SlurmAction(runner: slurm).status(node: name) }
        }
        #expect(slurm.calls.count == 1)  // only gpu999 was asked
    }

    @Test func stateIsParsedFromScontrolOutput() {
        let text = """
            NodeName=gpu001 Arch=x86_64 CoresPerSocket=1
               State=MIXED+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1
               Reason=faultline:gpu001@2026-11-22T05:00:00Z link.loss [root@2026-11-22T05:00:03]
            """
        let state = SlurmAction.parseNode(text, node: "gpu001")
        #expect(state == SchedulerState(node: "gpu001", quarantined: true, ours: true, reason: "faultline:gpu001@2026-11-22T05:00:00Z link.loss"))
        #expect(SlurmAction.parseNode("   State=DOWN*\n   Reason=Not responding [slurm@2026]\n", node: "n")?.ours == false)
        #expect(SlurmAction.parseNode("   State=IDLE\n", node: "n")?.quarantined == false)
        #expect(SlurmAction.parseNode("nothing here", node: "n") == nil)
    }
}

struct ExecAndDryRunTests {
    /// A script that keeps its state in a file beside it.
    func script(in directory: URL) throws -> String {
        let path = directory.appendingPathComponent("quarantine.sh").path
        let stateFile = directory.appendingPathComponent("state").path
        try """
        #!/bin/sh
        case "$1" in
          quarantine) printf '%s' "$FAULTLINE_REASON" > '\(stateFile)-'"$FAULTLINE_NODE"; echo "env: $FAULTLINE_CLASS $FAULTLINE_RUNBOOK" ;;
          release) rm -f '\(stateFile)-'"$FAULTLINE_NODE" ;;
          status) if [ -f '\(stateFile)-'"$FAULTLINE_NODE" ]; then printf '{"quarantined": true, "reason": "%s"}' "$(cat '\(stateFile)-'"$FAULTLINE_NODE")"; else echo '{"quarantined": false}'; fi ;;
        esac
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    @Test func aScriptQuarantinesAndReleasesWithTheFindingInItsEnvironment() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let action = ExecAction(script: try script(in: directory), runner: SubprocessRunner())
        let state = try action.quarantine(request("gpu010"))
        #expect(state.quarantined && state.ours && state.reason == "faultline:gpu010@2026-11-22T05:00:00Z gpu.down")
        #expect(try action.status(node: "gpu011").quarantined == false)
        #expect(try !action.release(node: "gpu010").quarantined)
    }

    @Test func aScriptThatLiesIsCaught() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("liar.sh").path
        try "#!/bin/sh\n[ \"$1\" = status ] && echo '{\"quarantined\": false}'\nexit 0\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        #expect(throws: ActionError.self) { try ExecAction(script: path, runner: SubprocessRunner()).quarantine(request("gpu012")) }
    }

    @Test func dryRunRecordsAndTouchesNothingElse() throws {
        let action = DryRunAction()
        _ = try action.quarantine(request("gpu020"))
        _ = try action.quarantine(request("gpu020"))
        #expect(try action.status(node: "gpu020").ours)
        _ = try action.release(node: "gpu020")
        #expect(action.log == ["quarantine gpu020 (faultline:gpu020@2026-11-22T05:00:00Z gpu.down)", "release gpu020"])
    }

    @Test func dryRunOfSlurmRecordsTheExactCommandAndRunsNothing() throws {
        let slurm = FakeSlurm(nodes: ["gpu021": .init(base: "IDLE")])
        let action = DryRunAction(planning: SlurmAction(runner: slurm))
        let state = try action.quarantine(request("gpu021"))
        let command = "scontrol update NodeName=gpu021 State=DRAIN Reason=\"faultline:gpu021@2026-11-22T05:00:00Z gpu.down\""
        #expect(action.log == [command])
        #expect(state.reason == "would run: " + command)
        #expect(slurm.calls.isEmpty)
    }
}

struct WebhookActionTests {
    @Test func postsTheEventWithItsTokenAndRetriesServerErrors() throws {
        let seen = Mutex<[HTTPRequest]>([])
        let failuresLeft = Mutex(1)
        var router = Router()
        router.post("/hooks/faultline") { request in
            seen.withLock { $0.append(request) }
            let fail = failuresLeft.withLock { left in
                defer { left -= 1 }
                return left > 0
            }
            return fail ? HTTPResponse(status: 503) : HTTPResponse(status: 204)
        }
        let server = try HTTPServer(router: router)
        let address = try server.start()
        defer { server.stop() }
        let action = try WebhookAction(url: "http://\(address)/hooks/faultline", token: "s3cret")
        _ = try action.quarantine(request("gpu030"))
        let requests = seen.withLock { $0 }
        #expect(requests.count == 2)
        let last = try #require(requests.last)
        #expect(last.method == "POST" && last.target == "/hooks/faultline")
        #expect(last.headers["Authorization"] == "Bearer s3cret")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(last.body)) as? [String: String])
        #expect(body["event"] == "quarantine" && body["node"] == "gpu030" && body["runbook"] == "runbooks/gpu.down.md")
    }

    @Test func aClientErrorIsNotRetriedAndNothingUnreachableSucceeds() throws {
        let count = Mutex(0)
        var router = Router()
        router.post("/x") { _ in
            count.withLock { $0 += 1 }
            return HTTPResponse(status: 401)
        }
        let server = try HTTPServer(router: router)
        let address = try server.start()
        defer { server.stop() }
        #expect(throws: ActionError.self) {
            try WebhookAction(url: "http://\(address)/x", token: nil).quarantine(request("gpu031"))
        }
        #expect(count.withLock { $0 } == 1)
        #expect(throws: ActionError.self) {
            try WebhookAction(url: "http://127.0.0.1:9/x", token: nil, timeout: .seconds(1), attempts: 2).quarantine(request("gpu032"))
        }
        #expect(throws: ActionError.self) { try WebhookAction(url: "https://example.org/x", token: nil) }
    }
}

struct SubprocessTests {
    @Test func capturesOutputStatusAndEnvironment() throws {
        let result = try SubprocessRunner().run(
            ["/bin/sh", "-c", "echo out; echo err >&2; echo \"$FAULTLINE_X\"; exit 3"], environment: ["FAULTLINE_X": "x y"],
            timeout: .seconds(10))
        #expect(result.exitStatus == 3 && !result.timedOut)
        #expect(result.standardOutput == "out\nx y\n")
        #expect(result.standardError == "err\n")
    }

    @Test func standardInputIsGivenWholeAndEnds() throws {
        let input = Array(repeating: Array("line\n".utf8), count: 10_000).joined()  // 50,000 bytes
        let result = try SubprocessRunner().run(["/bin/sh", "-c", "wc -c; cat >/dev/null"], environment: [:], input: Array(input), timeout: .seconds(10))
        #expect(result.succeeded && result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "50000")
        #expect(throws: SystemCallError.self) {
            try SubprocessRunner().run(["/bin/cat"], environment: [:], input: Array(repeating: 0, count: SubprocessRunner.maxInputBytes + 1), timeout: .seconds(10))
        }
        // Without input the program reads an empty /dev/null, never our terminal.
        #expect(try SubprocessRunner().run(["/bin/sh", "-c", "wc -c"], timeout: .seconds(10)).standardOutput.hasPrefix("0"))
    }

    /// Programs started on several threads at once each see the end of their own input: no child
    /// inherits another's pipe (descriptors are made close-on-exec before any spawn can run).
    @Test func concurrentRunsEachGetTheirOwnInputsEnd() async throws {
        let results = await withTaskGroup(of: Bool.self) { group in
            for task in 0..<8 {
                group.addTask {
                    let input = Array("task \(task)\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 2_000)
                    var ok = true
                    for _ in 0..<15 {
                        let result = try? SubprocessRunner().run(["/bin/cat"], environment: [:], input: input, timeout: .seconds(20))
                        ok = ok && result?.succeeded == true && result.map { Array($0.standardOutput.utf8) == input } == true
                    }
                    return ok
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        // A child holding another's stdin open would keep that cat waiting until its deadline: a
        // failed (timed-out) run.
        #expect(results.count == 8 && results.allSatisfy(\.self))
    }

    @Test func aHungProgramAndWhatItStartedAreKilledAtTheDeadline() throws {
        let start = ContinuousClock.now
        let result = try SubprocessRunner().run(["/bin/sh", "-c", "sleep 30 & sleep 30"], timeout: .milliseconds(300))
        #expect(result.timedOut && result.exitStatus == nil)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func aProgramThatClosesItsOutputAndHangsIsKilledToo() throws {
        let start = ContinuousClock.now
        let result = try SubprocessRunner().run(["/bin/sh", "-c", "exec >&- 2>&-; sleep 30"], timeout: .milliseconds(300))
        #expect(result.timedOut)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func outputBeyondTheLimitIsDroppedNotBlocking() throws {
        let result = try SubprocessRunner(outputLimit: 1000).run(
            ["/bin/sh", "-c", "head -c 200000 /dev/zero | tr '\\\\0' a"], timeout: .seconds(10))
        #expect(result.exitStatus == 0 && result.truncated && result.standardOutput.utf8.count == 1000)
    }

    @Test func aMissingProgramIsAnError() {
        #expect(throws: SystemCallError.self) { try SubprocessRunner().run(["/nonexistent/program"], timeout: .seconds(5)) }
    }
}
