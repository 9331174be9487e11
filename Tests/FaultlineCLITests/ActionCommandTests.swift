// `faultline action run`: one action by hand through a config file, the state read back, errors as
// exit statuses.

import FaultlineCLI
import Foundation
import Testing

@Suite("action run")
struct ActionCommandTests {
    @Test("an exec script quarantines, reports its state as JSON and releases")
    func execThroughAConfigFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("action-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("state").path
        let script = directory.appendingPathComponent("q.sh").path
        try """
        #!/bin/sh
        case "$1" in
          quarantine) printf '%s' "$FAULTLINE_REASON" > '\(state)' ;;
          release) rm -f '\(state)' ;;
          status) if [ -f '\(state)' ]; then printf '{"quarantined": true, "reason": "%s"}' "$(cat '\(state)')"; else echo '{"quarantined": false}'; fi ;;
        esac
        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let config = directory.appendingPathComponent("serve.conf").path
        try "exec-script = \(script)\naction-timeout-seconds = 5\n".write(toFile: config, atomically: true, encoding: .utf8)

        let quarantine = run(["action", "run", "exec", "quarantine", "gpu-0007", "--config", config])
        #expect(quarantine.0 == .success, "\(quarantine.err)")
        #expect(quarantine.out.hasPrefix("gpu-0007: out of service (Faultline's), reason: faultline:gpu-0007@"))
        let status = run(["action", "run", "exec", "status", "gpu-0007", "--config", config, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.out.utf8)) as? [String: Any])
        #expect(object["node"] as? String == "gpu-0007")
        #expect(object["quarantined"] as? Bool == true && object["ours"] as? Bool == true)
        #expect((object["reason"] as? String)?.hasSuffix(" manual") == true)
        #expect(run(["action", "run", "exec", "release", "gpu-0007", "--config", config]).out == "gpu-0007: in service\n")
    }

    @Test("usage errors and missing settings")
    func mistakes() {
        #expect(run(["action", "run", "slurm", "drain", "gpu-0001"]).0 == .usage)
        #expect(run(["action", "run", "ssh", "status", "gpu-0001"]).0 == .usage)
        #expect(run(["action", "run", "dry-run", "status"]).0 == .usage)
        let missing = run(["action", "run", "exec", "status", "gpu-0001"])
        #expect(missing.0 == .dataError && missing.err.contains("exec-script"))
        let noWay = run(["action", "run", "kubernetes", "status", "gpu-0001"])
        #expect(noWay.0 == .dataError && noWay.err.contains("exactly one of 'kubernetes-proxy"))
    }

    @Test("a kubeconfig's decoded CA reaches curl as a file, and goes when the process exits")
    func decodedCertificatesGoAtExit() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("action-\(UUID().uuidString)")
        let scratch = directory.appendingPathComponent("tmp").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // A curl that answers from its configuration: it notes the CA file it was given and that
        // file's text, and says the node is in service.
        let seen = directory.appendingPathComponent("seen").path
        let curl = directory.appendingPathComponent("curl").path
        try """
            #!/bin/sh
            ca=$(sed -n 's/^cacert = "\\(.*\\)"$/\\1/p')
            { echo "$ca"; cat "$ca"; } > '\(seen)'
            printf '{"metadata": {"resourceVersion": "1"}, "spec": {}}\\n200'
            """.write(toFile: curl, atomically: true, encoding: .utf8)
        chmod(curl, 0o755)
        let kubeconfig = directory.appendingPathComponent("kubeconfig").path
        try """
            clusters:
            - cluster:
                certificate-authority-data: \(Data("THE-CA\n".utf8).base64EncodedString())
                server: https://10.0.0.1:6443
              name: c
            contexts:
            - context:
                cluster: c
                user: u
              name: c
            current-context: c
            users:
            - name: u
              user:
                token: t
            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let config = directory.appendingPathComponent("serve.conf").path
        try "kubernetes-kubeconfig = \(kubeconfig)\nkubernetes-curl = \(curl)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = try faultlineExecutable()
        process.arguments = ["action", "run", "kubernetes", "status", "gpu-0001", "--config", config]
        process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": scratch]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let lines = try String(contentsOfFile: seen, encoding: .utf8).split(separator: "\n")
        #expect(lines.first?.hasPrefix(scratch + "/faultline-kubernetes-") == true && lines.dropFirst().first == "THE-CA")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
    }

    @Test("the kubernetes action takes exactly one way to the API server")
    func kubernetesWays() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("action-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("serve.conf").path
        try "kubernetes-proxy = http://127.0.0.1:8001\nkubernetes-in-cluster = true\n".write(toFile: config, atomically: true, encoding: .utf8)
        let both = run(["action", "run", "kubernetes", "status", "gpu-0001", "--config", config])
        #expect(both.0 == .dataError && both.err.contains("exactly one of"))
        try "kubernetes-kubeconfig = \(directory.path)/missing\n".write(toFile: config, atomically: true, encoding: .utf8)
        let missing = run(["action", "run", "kubernetes", "status", "gpu-0001", "--config", config])
        #expect(missing.0 == .dataError && missing.err.contains("cannot read the kubeconfig"))
    }
}
