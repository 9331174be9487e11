// Host health on copies of the committed sysfs fixtures (Tests/ProbeTests/Fixtures), changed per
// test: a healthy node (nothing listed), downtrained GPU and NIC links, ports DOWN and a NIC gone,
// counter deltas and a reset, a GPU gone from sysfs; canned nvidia-smi output and kernel log lines
// with an XID 79; the bounds; a report whose port is down, through the wire form
// into the engine, opening gpu.port-down for that rail; and the running agent's reports.

import Engine
import FleetModel
import Foundation
import Net
import Probe
import Testing

@testable import Agent

/// A copy of a fixture tree in a fresh temporary directory (symlinks kept), to change freely.
func fixtureCopy(_ name: String, file: String = #filePath) throws -> String {
    let tests = file.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(
        separator: "/")
    let copy = temporaryDirectory() + "/" + name
    try FileManager.default.copyItem(atPath: tests + "/ProbeTests/Fixtures/" + name, toPath: copy)
    return copy
}

/// Removes a `fixtureCopy` with the temporary directory made for it.
func removeFixtureCopy(_ root: String) {
    try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: root).deletingLastPathComponent().path)
}

/// Replaces the file at `relative` below `root` (through symlinked directories, as sysfs paths go).
func writeFile(_ root: String, _ relative: String, _ text: String) throws {
    try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: root + "/" + relative))
}

/// nvidia-smi as a test wants it: absent, or printing `output` with `status`.
final class FakeCommands: CommandRunner {
    struct Answer: Sendable {
        var output: String
        var status: Int32 = 0
    }
    let answer: Locked<Answer?>
    let calls = Locked<[[String]]>([])

    init(_ answer: Answer? = nil) { self.answer = Locked(answer) }

    func run(
        _ arguments: [String], environment: [String: String], input: [UInt8], timeout: Duration
    ) throws(SystemCallError) -> CommandResult {
        calls.withLock { $0.append(arguments) }
        guard let answer = answer.withLock({ $0 }) else {
            throw SystemCallError("posix_spawnp \(arguments[0])", Errno(rawValue: ENOENT))
        }
        return CommandResult(exitStatus: answer.status, standardOutput: answer.output)
    }
}

/// A kernel log whose lines the test appends; each is read once.
final class FakeKernelLog: KernelLogSource {
    let pending = Locked<[String]>([])

    func append(_ lines: [String]) { pending.withLock { $0 += lines } }

    func newLines(containing marker: String, limit: Int) throws(AgentError) -> (lines: [String], skipped: Int)
    {
        let lines = pending.withLock { pending in
            defer { pending = [] }
            return pending.filter { $0.contains(marker) }
        }
        return (Array(lines.prefix(limit)), max(0, lines.count - limit))
    }
}

func collector(
    _ root: String, commands: FakeCommands = FakeCommands(), kernelLog: FakeKernelLog? = nil
) throws -> HostHealthCollector {
    let reader = SysfsReader(root: root)
    return HostHealthCollector(
        rails: try discoverNode(reader).rails,
        sources: HostHealthSources(sysfs: reader, commands: commands, kernelLog: kernelLog))
}

/// The entries of one `health` list, each as an object.
func entries(_ health: HostHealth, _ key: String) -> [[String: JSONValue]] {
    guard case .array(let values)? = health.json[key] else { return [] }
    return values.compactMap { if case .object(let entry) = $0 { entry } else { nil } }
}

/// The HGX fixture's GPU addresses by rail: one PCIe switch per rail, GPU on bus switch + 3.
let hgxGPUs = [0x18, 0x2b, 0x3b, 0x4d, 0x9b, 0xab, 0xbb, 0xcd].map { "0000:\(String($0, radix: 16)):00.0" }

@Suite struct HostHealthTests {
    @Test("a healthy HGX node: nothing wrong, so only what was checked; the same object every window")
    func healthyNode() throws {
        let root = try fixtureCopy("hgx-8gpu-8nic")
        defer { removeFixtureCopy(root) }
        var health = try collector(root)
        let first = health.collect()
        #expect(
            first.json == [
                "checked": .object([
                    "rails": .number(8), "pcieLinks": .number(16), "ports": .number(8),
                    "gpusQueried": .number(0),
                ]),
                "nvidiaSMI": .string("absent"),
            ])
        #expect(first.problems.isEmpty)
        let second = health.collect()
        #expect(JSONValue.object(second.json).jsonText == JSONValue.object(first.json).jsonText)
    }

    @Test("links below their maximum width are downtrained; a GPU's speed only counts when it is busy")
    func downtrainedLinks() throws {
        let root = try fixtureCopy("pcie-8gpu-2nic")
        defer { removeFixtureCopy(root) }
        // The fixture's GPU 6 (0000:95:00.0) is at x8 Gen3 of x16 Gen4. Besides: mlx5_0 (rails 0-3)
        // at x8; GPU 1 at x8 with its speed "Unknown"; GPU 4 at 2.5 GT/s and GPU 5 at 8 GT/s (x16).
        try writeFile(root, "sys/class/infiniband/mlx5_0/device/current_link_width", "8")
        try writeFile(root, "sys/bus/pci/devices/0000:14:00.0/current_link_width", "8")
        try writeFile(root, "sys/bus/pci/devices/0000:14:00.0/current_link_speed", "Unknown")
        try writeFile(root, "sys/bus/pci/devices/0000:93:00.0/current_link_speed", "2.5 GT/s PCIe")
        try writeFile(root, "sys/bus/pci/devices/0000:94:00.0/current_link_speed", "8.0 GT/s PCIe")
        let commands = FakeCommands()
        var health = try collector(root, commands: commands)
        let reading = health.collect()
        let pcie = entries(reading, "pcie")
        // Without nvidia-smi, no GPU's speed is judged: only widths.
        #expect(
            pcie.map { "\($0["rail"]?.jsonText ?? "") \($0["device"]?.jsonText ?? "")" } == [
                #"0 "nic""#, #"1 "gpu""#, #"1 "nic""#, #"2 "nic""#, #"3 "nic""#, #"6 "gpu""#,
            ])
        #expect(pcie[0]["address"] == .string("0000:18:00.0"))
        #expect(pcie.allSatisfy { $0["width"] == .number(8) && $0["expectedWidth"] == .number(16) })
        #expect(pcie[0]["speedGTs"] == .number(32) && pcie[0]["expectedSpeedGTs"] == .number(32))
        #expect(
            pcie[1]["speedGTs"] == nil && pcie[1]["maxSpeedGTs"] == nil && pcie[1]["expectedSpeedGTs"] == nil)
        #expect(pcie[5]["address"] == .string("0000:95:00.0"))
        #expect(pcie[5]["speedGTs"] == .number(8) && pcie[5]["maxSpeedGTs"] == .number(16))
        #expect(pcie[5]["expectedSpeedGTs"] == nil)
        #expect(reading.problems.isEmpty)
        // nvidia-smi says GPUs 5 and 6 are busy (no GpuIdle bit), the others idle.
        let rows = (0..<8).map { index -> String in
            let bus = [0x13, 0x14, 0x15, 0x16, 0x93, 0x94, 0x95, 0x96][index]
            let throttle = index == 5 || index == 6 ? "0x0000000000000000" : "0x0000000000000001"
            let address = "00000000:\(String(bus, radix: 16, uppercase: true)):00.0"
            return "\(index), \(address), 0, No, No, 41, \(throttle)"
        }
        commands.answer.withLock { $0 = FakeCommands.Answer(output: rows.joined(separator: "\n") + "\n") }
        let busy = health.collect()
        let gpus = entries(busy, "pcie").filter { $0["device"] == .string("gpu") }
        #expect(gpus.map { $0["rail"] } == [.number(1), .number(5), .number(6)])
        #expect(gpus[1]["width"] == .number(16) && gpus[1]["speedGTs"] == .number(8))
        #expect(gpus[1]["expectedSpeedGTs"] == .number(16) && gpus[2]["expectedSpeedGTs"] == .number(16))
        #expect(busy.json["nvidiaSMI"] == .string("ok") && busy.json["gpus"] == nil)
        #expect(commands.calls.withLock { $0.last } == [NvidiaSMI.command] + NvidiaSMI.arguments)
    }

    @Test("a DOWN port is reported for every rail its NIC serves; a NIC gone from sysfs is DOWN")
    func portsDown() throws {
        let root = try fixtureCopy("pcie-8gpu-2nic")
        defer { removeFixtureCopy(root) }
        var health = try collector(root)
        let first = health.collect()
        let ports = entries(first, "ports")
        #expect(ports.map { $0["rail"] } == (4..<8).map { .number(Double($0)) })
        #expect(ports.allSatisfy { $0["state"] == .string("DOWN") && $0["nic"] == .string("mlx5_1") })
        #expect(ports.allSatisfy { $0["port"] == .number(1) && $0["physicalState"] == .string("Disabled") })
        guard case .object(let checked)? = first.json["checked"] else {
            Issue.record("no checked")
            return
        }
        #expect(checked["ports"] == .number(8) && checked["pcieLinks"] == .number(16))
        try FileManager.default.removeItem(atPath: root + "/sys/class/infiniband/mlx5_0")
        let gone = health.collect()
        let after = entries(gone, "ports")
        #expect(after.map { $0["rail"] } == (0..<8).map { .number(Double($0)) })
        #expect(
            after.prefix(4).allSatisfy { $0["state"] == .string("DOWN") && $0["vanished"] == .bool(true) })
        #expect(after.suffix(4).allSatisfy { $0["state"] == .string("DOWN") && $0["vanished"] == nil })
        #expect(gone.json["checked"]?.jsonText.contains(#""pcieLinks": 12"#) == true)
    }

    @Test(
        "counters: nothing the first window, then deltas; one that went down is a reset; missing ones skipped"
    )
    func counterDeltas() throws {
        let root = try fixtureCopy("hgx-8gpu-8nic")
        defer { removeFixtureCopy(root) }
        var health = try collector(root)
        let counters = "sys/class/infiniband/mlx5_5/ports/1/counters/"
        #expect(health.collect().json["counters"] == nil)  // symbol_error is 17 already: remembered
        try writeFile(root, counters + "symbol_error", "20")
        try writeFile(root, counters + "link_downed", "0")  // was 8: the counters were reset
        try writeFile(root, counters + "link_error_recovery", "5")  // new: first seen, no delta
        try FileManager.default.removeItem(atPath: root + "/" + counters + "port_rcv_errors")
        try writeFile(root, "sys/class/infiniband/mlx5_2/ports/1/counters/port_xmit_discards", "10")  // was 3
        let second = health.collect()
        #expect(second.problems.isEmpty)
        let changed = entries(second, "counters")
        #expect(changed.count == 2)
        #expect(changed.first?["nic"] == .string("mlx5_2") && changed.first?["rails"] == .array([.number(2)]))
        #expect(changed.first?["deltas"] == .object(["port_xmit_discards": .number(7)]))
        #expect(changed.first?["reset"] == nil)
        let reset = try #require(changed.last)
        #expect(
            reset["nic"] == .string("mlx5_5") && reset["port"] == .number(1)
                && reset["rails"] == .array([.number(5)]))
        #expect(reset["deltas"] == .object(["symbol_error": .number(3), "link_downed": .number(0)]))
        #expect(reset["reset"] == .array([.string("link_downed")]))
        try writeFile(root, counters + "link_error_recovery", "7")
        try writeFile(root, counters + "port_rcv_errors", "4")  // back: first seen again
        let third = entries(health.collect(), "counters")
        #expect(third.count == 1)
        #expect(third.first?["deltas"] == .object(["link_error_recovery": .number(2)]))
    }

    @Test("a GPU gone from sysfs is off the bus on its rail, with no PCIe link of its own")
    func vanishedGPU() throws {
        let root = try fixtureCopy("hgx-8gpu-8nic")
        defer { removeFixtureCopy(root) }
        var health = try collector(root)
        #expect(health.collect().json["gpus"] == nil)
        try FileManager.default.removeItem(atPath: root + "/sys/bus/pci/devices/" + hgxGPUs[2])
        let reading = health.collect()
        #expect(
            entries(reading, "gpus") == [
                [
                    "rail": .number(2), "address": .string(hgxGPUs[2]), "offBus": .bool(true),
                    "offBusReason": .string("gone from sysfs"),
                ]
            ])
        #expect(reading.json["checked"]?.jsonText.contains(#""pcieLinks": 15"#) == true)
        #expect(reading.problems.isEmpty)
    }

    @Test("nvidia-smi figures per rail; XID 79 takes a GPU off the bus for good; other XIDs are counted")
    func nvidiaSMIAndXids() throws {
        let root = try fixtureCopy("hgx-8gpu-8nic")
        defer { removeFixtureCopy(root) }
        // GPU 2 (0000:3b:00.0) fell off the bus: nvidia-smi prints an error in place of its row.
        var lines = hgxGPUs.enumerated().map { index, address -> String in
            let bus = address.split(separator: ":")[1].uppercased()
            return index == 4
                ? "4, 00000000:\(bus):00.0, 2, [N/A], Yes, 88, 0x0000000000000044"
                : "\(index), 00000000:\(bus):00.0, 0, [N/A], No, 35, 0x0000000000000001"
        }
        lines[2] = "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error"
        let commands = FakeCommands(.init(output: lines.joined(separator: "\n") + "\n", status: 15))
        let kernelLog = FakeKernelLog()
        kernelLog.append([
            "NVRM: Xid (PCI:0000:3b:00): 79, pid=2201, name=python3, GPU has fallen off the bus.",
            "NVRM: Xid (PCI:0000:18:00): 13, pid=2201, name=python3, Graphics SM Warp Exception",
            "NVRM: Xid (PCI:0000:18:00): 13, pid=2201, name=python3, Graphics SM Warp Exception",
            "NVRM: Xid (PCI:0000:07:00): 31, pid=1, name=x, MMU fault",  // not a rail's GPU
            "mlx5_core 0000:19:00.0: Port module event: module 0, Cable plugged",
        ])
        var health = try collector(root, commands: commands, kernelLog: kernelLog)
        let first = health.collect()
        // Rail 2 is off the bus; rail 4 has uncorrectable ECC errors, rows to remap and thermal
        // slowdown; the others are idle and fine, so not listed.
        let gpus = entries(first, "gpus")
        #expect(gpus.map { $0["rail"] } == [.number(2), .number(4)])
        #expect(gpus[0]["offBus"] == .bool(true) && gpus[0]["offBusReason"] == .string("xid 79"))
        #expect(gpus[0]["temperatureC"] == nil && gpus[0]["index"] == nil)
        #expect(
            gpus[1] == [
                "rail": .number(4), "address": .string(hgxGPUs[4]), "offBus": .bool(false),
                "index": .number(4),
                "eccUncorrected": .number(2), "remappedRowsPending": .bool(true), "temperatureC": .number(88),
                "throttleReasons": .array([.string("SwPowerCap"), .string("HwThermalSlowdown")]),
            ])
        #expect(first.json["checked"]?.jsonText.contains(#""gpusQueried": 7"#) == true)
        #expect(
            entries(first, "xids") == [
                [
                    "rail": .number(0), "address": .string("0000:18:00"), "xid": .number(13),
                    "count": .number(2),
                ],
                [
                    "rail": .number(2), "address": .string("0000:3b:00"), "xid": .number(79),
                    "count": .number(1),
                ],
                ["address": .string("0000:07:00"), "xid": .number(31), "count": .number(1)],
            ])
        #expect(first.xidEvents == 4)
        #expect(first.json["nvidiaSMI"] == .string("failed"))
        #expect(
            first.problems == [
                "nvidia-smi line 3: not a GPU row: "
                    + "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error",
                "nvidia-smi: exit status 15",
            ])
        #expect(first.json["errors"] == .array(first.problems.map { .string($0) }))
        // The next window: no new XIDs, but the GPU stays off the bus.
        let second = health.collect()
        #expect(second.json["xids"] == nil)
        #expect(entries(second, "gpus").map { $0["offBus"] } == [.bool(true), .bool(false)])
    }

    @Test("bounded: lists are cut at the limit and the cut is named; errors list a few and count the rest")
    func bounded() throws {
        let root = try fixtureCopy("hgx-8gpu-8nic")
        defer { removeFixtureCopy(root) }
        let kernelLog = FakeKernelLog()
        kernelLog.append(
            (0..<300).map {
                let busDevice = String(format: "0001:%02x:%02x", $0 % 256, $0 / 256)
                return "NVRM: Xid (PCI:\(busDevice)): 48, DBE"
            })
        kernelLog.append((0..<20).map { "NVRM: Xid garbage \($0)" })
        var health = try collector(root, kernelLog: kernelLog)
        let reading = health.collect()
        #expect(entries(reading, "xids").count == HostHealthLimits.maxEntries)
        #expect(reading.problems.count == 21)
        #expect(reading.problems.last == "xids: 172 entries over the limit of 128 dropped")
        guard case .array(let listed)? = reading.json["errors"] else {
            Issue.record("no errors list")
            return
        }
        #expect(listed.count == HostHealthLimits.maxErrorsListed + 1)
        #expect(listed.last == .string("and 13 more"))
        #expect(JSONValue.object(reading.json).jsonText.utf8.count < 32 << 10)
    }

    @Test("parsers: XID lines, PCI addresses, nvidia-smi rows with N/A")
    func parsers() {
        #expect(
            XidEvent(line: "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus.")
                == XidEvent(line: "[ 12.5] NVRM: Xid (0000:3B:00): 79, GPU has fallen off the bus."))
        #expect(XidEvent(line: "NVRM: Xid (PCI:0000:3b:00): 79, x")?.busDevice == "0000:3b:00")
        #expect(XidEvent(line: "NVRM: Xid (PCI:0000:3b:00): 79, x")?.code == 79)
        #expect(XidEvent(line: "NVRM: Xid (PCI:zz): 79, x") == nil)
        #expect(XidEvent(line: "NVRM: Xid (PCI:0000:3b:00): , x") == nil)
        #expect(XidEvent(line: "NVRM: GPU at PCI:0000:3b:00: GPU-1234") == nil)
        #expect(normalizedPCIAddress("00000000:3B:00.0") == "0000:3b:00.0")
        #expect(normalizedPCIAddress("0000:3b:00") == nil && normalizedPCIAddress("0000:3b:00.9") == nil)
        let parsed = NvidiaSMI.parse("0, 00000000:18:00.0, [N/A], [N/A], [N/A], [N/A], [N/A]\r\n\n")
        #expect(parsed.problems.isEmpty)
        #expect(parsed.rows == [NvidiaSMIRow(index: 0, address: "0000:18:00.0")])
        #expect(NvidiaSMI.parse("0, 00000000:18:00.0, 0, No\n").problems.count == 1)
        #expect(NvidiaSMI.throttleReasons(0x1_0004) == ["SwPowerCap", "0x10000"])
    }

    @Test("the kernel log device: a clear error when it cannot be opened")
    func kernelLogDevice() throws {
        #expect(throws: AgentError("/nonexistent-faultline/kmsg: open: No such file or directory")) {
            try KernelMessageDevice(path: "/nonexistent-faultline/kmsg")
        }
    }

    @Test("a report whose rail 3 port is DOWN, sent as JSON, makes the engine open gpu.port-down on rail 3")
    func portDownBecomesAFinding() throws {
        let root = try fixtureCopy("hgx-8gpu-8nic")
        defer { removeFixtureCopy(root) }
        let topology = try Topology.railOptimized(.init(nodes: 2, rails: 8, nodesPerLeaf: 2, spines: 1))
        let node = topology.nodes[0].name
        var health = try collector(root)
        var engine = Engine(topology: topology, rules: .defaults, windowSeconds: 10)
        let start = Timestamp(secondsSinceEpoch: 1_800_000_000)
        var findings: [Finding] = []
        for window in 0..<9 {
            let state = (2..<5).contains(window) ? "1: DOWN" : "4: ACTIVE"
            try writeFile(root, "sys/class/infiniband/mlx5_3/ports/1/state", state)
            let windowStart = start.adding(seconds: Int64(window * 10))
            let sent = Report(
                node: node, windowStart: windowStart, windowSeconds: 10, agentVersion: "test",
                transport: .udp,
                pairs: [], health: health.collect().json)
            // As the correlator gets it: the wire form, parsed and validated against the topology.
            let received = try Report(json: Data(sent.jsonLine.utf8), topology: topology)
            #expect(received.health == sent.health)
            #expect(engine.ingest(received) == .accepted)
            findings += engine.advance(
                to: windowStart.adding(seconds: Int64(10 * (1 + Rules.defaults.graceWindows))))
        }
        let events = findings.map { "\($0.window) \($0.event.rawValue) \($0.component) \($0.faultClass)" }
        #expect(events.first == "\(start.adding(seconds: 30)) opened \(node)/3 gpu.port-down")
        #expect(events.filter { $0.contains("opened") }.count == 1)
        #expect(events.last == "\(start.adding(seconds: 70)) closed \(node)/3 gpu.port-down")
    }

    @Test("the running agent puts host health in every report and counts collections on /metrics")
    func agentReportsCarryHealth() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = try fixtureCopy("pcie-8gpu-2nic")
        defer { removeFixtureCopy(root) }
        let correlator = FakeCorrelator()
        let server = try correlator.start(on: try SocketAddress.parse("127.0.0.1:0"))
        defer { server.stop() }
        var options = AgentOptions(
            node: NodeName("n1")!, listen: try SocketAddress.parse("127.0.1.1:0"),
            correlator: server.boundAddress!, tokenFile: directory + "/token",
            spoolDirectory: directory + "/spool", agentVersion: "test")
        options.windowSeconds = 1
        options.metrics = try SocketAddress.parse("127.0.0.1:0")
        try Data("t0ken".utf8).write(to: URL(fileURLWithPath: directory + "/token"))
        try Data(#"{"node": "n1", "pairs": [{"src": "n1/4", "dst": "n1/4"}]}"#.utf8)
            .write(to: URL(fileURLWithPath: directory + "/p.json"))
        options.pinglistFile = directory + "/p.json"
        let kernelLog = FakeKernelLog()
        kernelLog.append(["NVRM: Xid (PCI:0000:95:00): 79, pid=7, GPU has fallen off the bus."])
        let agent = try NodeAgent(
            options: options, log: AgentLog { _ in },
            health: HostHealthSources(
                sysfs: SysfsReader(root: root), commands: FakeCommands(), kernelLog: kernelLog))
        let done = DispatchSemaphore(value: 0)
        try spawnThread {
            try? agent.run()
            done.signal()
        }
        func reports() -> [Report] {
            correlator.state.withLock { state in
                state.order.compactMap { state.stored[$0] }.compactMap { try? Report(json: Data($0.utf8)) }
            }
        }
        #expect(eventually { reports().count >= 2 })
        let metrics = try HTTPClient(connectingTo: agent.metricsBoundAddress!).send("GET", "/metrics").text
        agent.requestStop()
        #expect(done.wait(timeout: .now() + 10) == .success)
        for report in reports() {
            let health = HostHealth(json: report.health, problems: [], xidEvents: 0)
            #expect(
                entries(health, "ports").filter { $0["state"] == .string("DOWN") }.map { $0["rail"] }
                    == (4..<8).map { .number(Double($0)) })
            #expect(entries(health, "gpus").map { $0["rail"] } == [.number(6)])
            #expect(entries(health, "gpus").first?["offBusReason"] == .string("xid 79"))
        }
        #expect(metrics.contains("faultline_agent_health_collections_total "))
        #expect(!metrics.contains("faultline_agent_health_collections_total 0\n"))
        #expect(metrics.contains("faultline_agent_gpu_xid_events_total 1\n"))
        #expect(metrics.contains("faultline_agent_health_errors_total 0\n"))
    }
}
