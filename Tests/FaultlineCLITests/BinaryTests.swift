// The built `faultline` binary as a process: stdout, stderr, exit status; the 1,000,000-value acceptance.

import Foundation
import Simulation
import Testing

@testable import FaultlineCLI

/// The `faultline` executable SwiftPM built beside this test binary.
func faultlineExecutable() throws -> URL {
    let testBinary: URL
    #if os(Linux)
    testBinary = URL(
        fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    #else
    testBinary = try #require(Bundle.main.executableURL)
    #endif
    // On Linux the test binary sits in the products directory; in a macOS bundle it is a few levels down.
    var directory = testBinary.deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("faultline")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw BinaryNotFound(testBinary: testBinary.path)
}

private struct BinaryNotFound: Error, CustomStringConvertible {
    let testBinary: String
    var description: String { "no executable 'faultline' near the test binary \(testBinary)" }
}

private struct ProcessOutput {
    let status: Int32
    let out: String
    let err: String
}

/// Runs `faultline <args>` with the contents of `stdinFile` as its standard input.
private func runFaultline(_ args: [String], stdinFile: URL) async throws -> ProcessOutput {
    let input = try FileHandle(forReadingFrom: stdinFile)
    defer { try? input.close() }
    return try await runFaultline(args, standardInput: input)
}

/// Runs `faultline <args>` with `stdin` piped in: through a pipe when it fits the pipe's buffer
/// (written whole before the child starts, so no writer has to race it), else through a file.
private func runFaultline(_ args: [String], stdin: String = "") async throws -> ProcessOutput {
    let data = Data(stdin.utf8)
    guard data.count <= 32_768 else {
        return try await withTemporaryFile(contents: data) { try await runFaultline(args, stdinFile: $0) }
    }
    let pipe = Pipe()
    try pipe.fileHandleForWriting.write(contentsOf: data)
    try pipe.fileHandleForWriting.close()
    return try await runFaultline(args, standardInput: pipe)
}

private func runFaultline(_ args: [String], standardInput: Any) async throws -> ProcessOutput {
    let process = Process()
    process.executableURL = try faultlineExecutable()
    process.arguments = args
    process.standardInput = standardInput
    let outPipe = Pipe()
    let errPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    try process.run()
    // Drain both pipes at once so that neither can fill up and stall the child.
    let errReader = errPipe.fileHandleForReading
    let errTask = Task.detached { errReader.readDataToEndOfFile() }
    let outData = outPipe.fileHandleForReading.readDataToEndOfFile()
    let errData = await errTask.value
    process.waitUntilExit()
    #expect(process.terminationReason == .exit, "faultline died of signal \(process.terminationStatus)")
    return ProcessOutput(
        status: process.terminationStatus, out: String(decoding: outData, as: UTF8.self),
        err: String(decoding: errData, as: UTF8.self))
}

private func withTemporaryFile<T>(contents: Data, _ body: (URL) async throws -> T) async throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("faultline-cli-test-\(UUID().uuidString).txt")
    try contents.write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}

@Suite("the faultline executable")
struct BinaryTests {
    @Test("the executable is found beside the test binary")
    func executableExists() throws {
        let url = try faultlineExecutable()
        #expect(url.lastPathComponent == "faultline")
    }

    @Test("sketch quantiles --json on piped numbers: one JSON object, exit 0")
    func quantilesFromPipe() async throws {
        let result = try await runFaultline(
            ["sketch", "quantiles", "--json", "--q", "0,0.5,1"], stdin: "4\n1\n3\n2\n5\n")
        #expect(result.status == 0)
        #expect(result.err == "")
        let json = try QuantilesJSON(result.out)
        #expect(json.count == 5)
        #expect(json.min == 1)
        #expect(json.max == 5)
        #expect(relativeError(try json.answer("0.5"), 3) <= 0.01 + 1e-12)
        #expect(try json.answer("0") == 1)
        #expect(try json.answer("1") == 5)
    }

    @Test("an unknown command: exit 64, usage on stderr, nothing on stdout")
    func unknownCommand() async throws {
        let result = try await runFaultline(["nosuch"])
        #expect(result.status == 64)
        #expect(result.out == "")
        #expect(result.err.contains("unknown command 'nosuch'"))
        #expect(result.err.contains("usage: faultline"))
    }

    @Test("no arguments: exit 64 with the command list on stderr")
    func noArguments() async throws {
        let result = try await runFaultline([])
        #expect(result.status == 64)
        #expect(result.out == "")
        #expect(result.err.contains("sketch quantiles"))
    }

    @Test(
        "bad data: exit 65 with the line number on stderr",
        arguments: [
            ("1\n2\nnot-a-number\n", "line 3: "),
            ("1\n" + String(repeating: "1", count: 5000) + "\n", "line 2: longer than 4096 bytes"),
        ])
    func badData(stdin: String, complaint: String) async throws {
        let result = try await runFaultline(["sketch", "quantiles"], stdin: stdin)
        #expect(result.status == 65)
        #expect(result.out == "")
        #expect(result.err.contains(complaint), "\(result.err.prefix(200))")
    }

    @Test(
        "--version and --help exit 0 on stdout",
        arguments: [["--version"], ["--help"], ["sketch", "encode", "--help"]])
    func informational(args: [String]) async throws {
        let result = try await runFaultline(args)
        #expect(result.status == 0)
        #expect(result.err == "")
        #expect(result.out.hasPrefix("faultline ") || result.out.hasPrefix("usage: faultline "))
    }

    @Test("encode piped into decode answers within the accuracy")
    func encodeThenDecode() async throws {
        let values = LatencyDistribution.lognormal(median: 8, sigma: 0.45).samples(2000, seed: 17)
        let encoded = try await runFaultline(["sketch", "encode"], stdin: lines(values))
        #expect(encoded.status == 0)
        let decoded = try await runFaultline(
            ["sketch", "decode", "--json", "--q", "0.5,0.99"], stdin: encoded.out)
        #expect(decoded.status == 0)
        #expect(decoded.err == "")
        let json = try QuantilesJSON(decoded.out)
        #expect(json.count == 2000)
        let sorted = values.sorted()
        for q in ["0.5", "0.99"] {
            let exact = exactLowerQuantile(sorted, Double(q)!)
            #expect(relativeError(try json.answer(q), exact) <= 0.01 + 1e-12, "q \(q)")
        }
    }

    @Test("acceptance: 1,000,000 lognormal values through the binary, p50/p90/p99/p99.9 within 1%")
    func millionValues() async throws {
        let values = LatencyDistribution.lognormal(median: 8, sigma: 0.45).samples(1_000_000, seed: 2024)
        var text = ""
        text.reserveCapacity(values.count * 20)
        for value in values {
            text += "\(value)\n"
        }
        let result = try await withTemporaryFile(contents: Data(text.utf8)) {
            try await runFaultline(
                ["sketch", "quantiles", "--json", "--q", "0.5,0.9,0.99,0.999"], stdinFile: $0)
        }
        #expect(result.status == 0)
        #expect(result.err == "")
        let json = try QuantilesJSON(result.out)
        #expect(json.count == 1_000_000)
        let sorted = values.sorted()
        #expect(json.min == sorted.first)
        #expect(json.max == sorted.last)
        for label in ["0.5", "0.9", "0.99", "0.999"] {
            let exact = exactLowerQuantile(sorted, Double(label)!)
            let answer = try json.answer(label)
            #expect(relativeError(answer, exact) <= 0.01 + 1e-12, "p\(label): \(answer) vs exact \(exact)")
        }
    }
}

/// A sysfs fixture tree of ProbeTests, from the source tree.
private func sysfsFixture(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ProbeTests/Fixtures/\(name)").path
}

@Suite("faultline agent discover")
struct AgentDiscoverBinaryTests {
    @Test("on this machine: libibverbs' answer (no RDMA: the errno text), what sysfs shows, exit 0")
    func live() async throws {
        let result = try await runFaultline(["agent", "discover"])
        #expect(result.status == 0)
        #expect(result.err == "")
        if result.out.hasPrefix("no RDMA devices") {
            // Without kernel RDMA (this machine) it is ENOSYS: "ibv_get_device_list: Function not
            // implemented"; elsewhere (no permission, no devices) the call or the library is named.
            #expect(result.out.contains("ibv_get_device_list") || result.out.contains("libibverbs lists none"))
        } else {
            #expect(result.out.hasPrefix("libibverbs devices:"))
        }
        #expect(result.out.contains("NICs (sysfs): "))
        #expect(result.out.contains("GPUs (sysfs): "))
        let json = try await runFaultline(["agent", "discover", "--json"])
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
        #expect(object?["verbs"] is [String: Any])
    }

    @Test("agent --transport verbs without kernel RDMA: exit 65 naming ibv_get_device_list, no crash")
    func verbsAgentWithoutRDMA() async throws {
        let discover = try await runFaultline(["agent", "discover"])
        // This test is for machines without kernel RDMA (like CI's): fail loudly anywhere else.
        try #require(discover.out.contains("ibv_get_device_list: Function not implemented"), "\(discover.out)")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("verbs-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("t0ken".utf8).write(to: directory.appendingPathComponent("token"))
        let result = try await runFaultline([
            "agent", "--transport", "verbs", "--node", "n1", "--listen", "127.0.0.1:0",
            "--correlator", "http://127.0.0.1:9", "--token-file", directory.appendingPathComponent("token").path,
            "--spool", directory.appendingPathComponent("spool").path,
        ])
        #expect(result.status == 65)
        #expect(result.out == "")
        #expect(result.err.contains("no RDMA devices: ibv_get_device_list: Function not implemented"), "\(result.err)")
    }

    @Test("--sysfs on the HGX fixture: eight NICs, eight GPUs, eight rails, no libibverbs")
    func hgx() async throws {
        let result = try await runFaultline(["agent", "discover", "--sysfs", sysfsFixture("hgx-8gpu-8nic")])
        #expect(result.status == 0)
        #expect(result.err == "")
        #expect(!result.out.contains("RDMA devices"))
        #expect(result.out.contains("NICs (sysfs): 8\n"))
        #expect(result.out.contains("GPUs (sysfs): 8\n"))
        #expect(result.out.contains("rails: 8\n"))
        #expect(result.out.contains("rail 0: GPU 0000:18:00.0 <-> mlx5_0 (shared PCIe depth 3)"))
        #expect(result.out.contains("rail 7: GPU 0000:cd:00.0 <-> mlx5_7"))
    }

    @Test("--sysfs --json on the 2-NIC fixture; --rails overrides; a bad root is exit 65")
    func twoNICsJSON() async throws {
        let result = try await runFaultline(
            ["agent", "discover", "--sysfs", sysfsFixture("pcie-8gpu-2nic"), "--json", "--rails", "3=mlx5_1"])
        #expect(result.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
        #expect(object["verbs"] is NSNull)
        let rails = try #require(object["rails"] as? [[String: Any]])
        #expect(rails.map { $0["nic"] as? String } == ["mlx5_0", "mlx5_0", "mlx5_0", "mlx5_1", "mlx5_1", "mlx5_1", "mlx5_1", "mlx5_1"])
        #expect(rails[3]["override"] as? Bool == true)
        let gpus = try #require(object["gpus"] as? [[String: Any]])
        #expect(gpus.filter { ($0["link"] as? [String: Any])?["downtrained"] as? Bool == true }.count == 1)
        let bad = try await runFaultline(["agent", "discover", "--sysfs", "/nonexistent-faultline"])
        #expect(bad.status == 65)
        #expect(bad.err.contains("/nonexistent-faultline/sys: no sysfs here"))
        let usage = try await runFaultline(["agent", "discover", "--rails", "x"])
        #expect(usage.status == 64)
    }
}
