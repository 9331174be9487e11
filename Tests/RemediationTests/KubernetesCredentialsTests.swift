// The kubernetes action's way to a real API server: kubeconfig and in-cluster credentials, and
// HTTPS through curl against a TLS server whose certificate a test CA signed (openssl makes the
// certificates; a small Python TLS relay stands in front of the fake API server, which still checks
// every request). No real API server can run here.

import Foundation
import Net
import Synchronization
import Testing

@testable import Remediation

private func quarantineRequest(_ node: String) -> QuarantineRequest {
    QuarantineRequest(node: node, intent: "\(node)@2026-11-22T05:00:00Z", faultClass: "gpu.down", component: node, reason: "test")
}

private func scratchDirectory(_ name: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private let kindConfig = """
    apiVersion: v1
    clusters:
    - cluster:
        certificate-authority-data: \(Data("-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n".utf8).base64EncodedString())
        server: https://127.0.0.1:6443/
      name: kind-gpu
    - cluster:
        certificate-authority: certs/staging-ca.crt
        server: "https://staging.example:443"
      name: staging
    contexts:
    - context:
        cluster: kind-gpu
        user: kind-admin
      name: kind-gpu
    - context:
        cluster: staging
        namespace: default
        user: 'faultline'
      name: staging
    current-context: kind-gpu   # the default
    kind: Config
    preferences: {}
    users:
    - name: kind-admin
      user:
        client-certificate: /etc/faultline/admin.crt
        client-key: /etc/faultline/admin.key
    - name: faultline
      user:
        tokenFile: token
    """

struct KubeconfigTests {
    @Test func theCurrentContextAndAnotherByName() throws {
        let directory = try scratchDirectory("kubeconfig")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/config"
        try kindConfig.write(toFile: path, atomically: true, encoding: .utf8)
        let secrets = "\(directory)/private"

        let kind = try KubernetesCredentials.kubeconfig(path, privateDirectory: secrets)
        #expect(kind.server == "https://127.0.0.1:6443")
        #expect(kind.certificateAuthority == "\(secrets)/ca.crt")
        #expect(kind.clientCertificate == "/etc/faultline/admin.crt" && kind.clientKey == "/etc/faultline/admin.key")
        #expect(kind.token == nil)
        // The CA's data is written where only we can read it.
        let written = try String(contentsOfFile: "\(secrets)/ca.crt", encoding: .utf8)
        #expect(written.hasPrefix("-----BEGIN CERTIFICATE-----\nTEST"))
        let mode = try FileManager.default.attributesOfItem(atPath: secrets)[.posixPermissions] as? Int
        #expect(mode == 0o700)

        // Relative paths are the kubeconfig's directory's, as kubectl takes them.
        let staging = try KubernetesCredentials.kubeconfig(path, context: "staging", privateDirectory: secrets)
        #expect(staging.server == "https://staging.example:443")
        #expect(staging.certificateAuthority == "\(directory)/certs/staging-ca.crt")
        #expect(staging.token == .file("\(directory)/token"))
    }

    @Test func windowsLineEndingsFoldedValuesAndQuotesInWords() throws {
        let directory = try scratchDirectory("kubeconfig")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/config"
        // A merged ~/.kube/config: a GKE user whose exec block holds a value folded over two lines
        // (not the context used), CRLF line endings, a quote inside a word before a comment.
        let text = kindConfig + """

            - name: gke-user
              user:
                exec:
                  command: gke-gcloud-auth-plugin
                  installHint: Install gke-gcloud-auth-plugin for use with kubectl by following
                    https://cloud.google.com/blog/products/containers-kubernetes/kubectl-auth-changes-in-gke
                  provideClusterInfo: true
            """
        try text.replacingOccurrences(of: "\n", with: "\r\n").replacingOccurrences(of: "namespace: default", with: "namespace: o'brien  # team")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let staging = try KubernetesCredentials.kubeconfig(path, context: "staging", privateDirectory: "\(directory)/private")
        #expect(staging.server == "https://staging.example:443" && staging.token == .file("\(directory)/token"))
        let root = try YAMLNode.parse(text.replacingOccurrences(of: "namespace: default", with: "namespace: o'brien  # team"))
        #expect(root["contexts"]?.items.last?["context"]?["namespace"]?.text == "o'brien")
        let hint = root["users"]?.items.last?["user"]?["exec"]?["installHint"]?.text
        #expect(hint?.hasSuffix("by following https://cloud.google.com/blog/products/containers-kubernetes/kubectl-auth-changes-in-gke") == true)
        #expect(throws: YAMLNode.ParseError.self) { try YAMLNode.parse("token: \"abc\\\"\n") }
        #expect(try YAMLNode.parse("token: \"a\\\"b # c\"  # note\n")["token"]?.text == "a\"b # c")
    }

    @Test func whatCannotBeUsedIsRefusedWithItsLine() throws {
        let directory = try scratchDirectory("kubeconfig")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/config"
        func error(_ text: String, context: String? = nil) throws -> String {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try KubernetesCredentials.kubeconfig(path, context: context, privateDirectory: "\(directory)/private")
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(try error(kindConfig, context: "prod").contains("no context named 'prod'"))
        let exec = kindConfig.replacingOccurrences(
            of: "    tokenFile: token", with: "    exec:\n      command: aws\n      apiVersion: client.authentication.k8s.io/v1")
        #expect(try error(exec, context: "staging").contains("config:31: user 'faultline' authenticates through 'exec'"))
        let insecure = kindConfig.replacingOccurrences(of: "    server: https://127.0.0.1:6443/", with: "    server: https://127.0.0.1:6443/\n    insecure-skip-tls-verify: true")
        #expect(try error(insecure).contains("config:6: insecure-skip-tls-verify"))
        let plain = kindConfig.replacingOccurrences(of: "https://127.0.0.1:6443/", with: "http://127.0.0.1:8080")
        #expect(try error(plain).contains("config:5: cluster 'kind-gpu' needs an https:// server"))
        #expect(try error("clusters:\n- cluster:\n    server: |\n      https://x\n").contains("config:3: '|'"))
        #expect(try error("clusters:\n  - a\n - b\n").contains("config:3: unexpected indentation"))
        #expect(try error("apiVersion: v1\nkind: Config\n").contains("no current-context"))
        let injected = kindConfig.replacingOccurrences(of: "    tokenFile: token", with: "    token: \"abc\\nX-Injected: 1\"")
        #expect(try error(injected, context: "staging").contains("config:31: user 'faultline' has a token with a line break"))
    }

    @Test func inClusterReadsTheServiceAccountAndItsTokenAgainEachTime() throws {
        let directory = try scratchDirectory("serviceaccount")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: ActionError.self) {
            try KubernetesCredentials.inCluster(environment: [:], directory: directory)
        }
        let environment = ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"]
        #expect(throws: ActionError.self) {
            try KubernetesCredentials.inCluster(environment: environment, directory: directory)
        }
        try "ca".write(toFile: "\(directory)/ca.crt", atomically: true, encoding: .utf8)
        try "first\n".write(toFile: "\(directory)/token", atomically: true, encoding: .utf8)
        let credentials = try KubernetesCredentials.inCluster(environment: environment, directory: directory)
        #expect(credentials.server == "https://[fd00::1]:443")
        #expect(credentials.certificateAuthority == "\(directory)/ca.crt")
        #expect(try credentials.currentToken() == "first")
        try "rotated".write(toFile: "\(directory)/token", atomically: true, encoding: .utf8)
        #expect(try credentials.currentToken() == "rotated")
    }

    @Test func curlIsConfiguredOnItsInputNotItsCommandLine() throws {
        final class Recording: CommandRunner, @unchecked Sendable {
            var calls: [(arguments: [String], input: String)] = []
            func run(
                _ arguments: [String], environment: [String: String], input: [UInt8], timeout: Duration
            ) throws(SystemCallError) -> CommandResult {
                calls.append((arguments, String(decoding: input, as: UTF8.self)))
                return CommandResult(exitStatus: 0, standardOutput: "{\"metadata\":{},\"spec\":{}}\n200")
            }
        }
        let runner = Recording()
        let credentials = KubernetesCredentials(
            server: "https://10.0.0.1:6443", certificateAuthority: "/etc/k8s/ca \"quoted\".crt", token: .inline("s3cret"))
        let action = KubernetesAction(credentials: credentials, curl: "/usr/bin/curl", runner: runner)
        #expect(try !action.status(node: "gpu-7").quarantined)
        let call = try #require(runner.calls.first)
        #expect(call.arguments == ["/usr/bin/curl", "-q", "--config", "-"])
        #expect(call.input.contains("url = \"https://10.0.0.1:6443/api/v1/nodes/gpu-7\"\n"))
        #expect(call.input.contains("header = \"Authorization: Bearer s3cret\"\n"))
        #expect(call.input.contains("cacert = \"/etc/k8s/ca \\\"quoted\\\".crt\"\n"))
        #expect(call.input.contains("proto = \"=https\"\n"))
        #expect(!call.arguments.joined().contains("s3cret"))
    }
}

/// An HTTPS server for one test: a CA, a certificate for 127.0.0.1 it signed, and a Python TLS relay
/// to `upstream` (plain HTTP).
private final class TLSRelay {
    let directory: String
    let port: Int
    private let process: Process

    init(upstream: SocketAddress) throws {
        directory = try scratchDirectory("tls")
        let runner = SubprocessRunner()
        func openssl(_ arguments: String) throws {
            let result = try runner.run(["openssl"] + arguments.split(separator: " ").map(String.init), environment: [:], timeout: .seconds(60))
            guard result.succeeded else { throw CocoaError(.featureUnsupported, userInfo: ["openssl": result.standardError]) }
        }
        let d = directory
        let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        try openssl("req -x509 \(key) -keyout \(d)/ca.key -out \(d)/ca.crt -days 2 -subj /CN=faultline-test-ca")
        try openssl("req -x509 \(key) -keyout \(d)/other-ca.key -out \(d)/other-ca.crt -days 2 -subj /CN=someone-else")
        try openssl("req \(key) -keyout \(d)/server.key -out \(d)/server.csr -subj /CN=127.0.0.1")
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: "\(d)/san", atomically: true, encoding: .utf8)
        try openssl("x509 -req -in \(d)/server.csr -CA \(d)/ca.crt -CAkey \(d)/ca.key -CAcreateserial -out \(d)/server.crt -days 2 -extfile \(d)/san")
        try """
            import socket, ssl, sys, threading
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[1], sys.argv[2])
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            print(listener.getsockname()[1], flush=True)
            def pump(source, sink):
                try:
                    while data := source.recv(65536):
                        sink.sendall(data)
                except OSError:
                    pass
                for s in (source, sink):
                    try: s.close()
                    except OSError: pass
            while True:
                client, _ = listener.accept()
                try:
                    secure = context.wrap_socket(client, server_side=True)
                except (ssl.SSLError, OSError):
                    client.close()
                    continue
                upstream = socket.create_connection(("127.0.0.1", int(sys.argv[3])))
                threading.Thread(target=pump, args=(secure, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, secure), daemon=True).start()
            """.write(toFile: "\(d)/relay.py", atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "\(d)/relay.py", "\(d)/server.crt", "\(d)/server.key", "\(upstream.port)"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            line += chunk
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(process.processIdentifier, SIGKILL)
            throw CocoaError(.featureUnsupported, userInfo: ["relay": "did not start"])
        }
        self.port = port
    }

    func stop() {
        // SIGKILL: Foundation's Process starts programs with the test runner's blocked signals, SIGTERM among them.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite(.serialized) struct KubernetesOverTLSTests {
    @Test func aKubeconfigsCAAndTokenReachTheAPIServerOverHTTPS() throws {
        let api = try FakeAPIServer(nodes: ["gpu-9": FakeAPIServer.node("gpu-9")])
        defer { api.stop() }
        let relay = try TLSRelay(upstream: api.address!)
        defer { relay.stop() }
        let ca = try Data(contentsOf: URL(fileURLWithPath: "\(relay.directory)/ca.crt")).base64EncodedString()
        try """
            apiVersion: v1
            clusters:
            - cluster:
                certificate-authority-data: \(ca)
                server: https://127.0.0.1:\(relay.port)
              name: lab
            contexts:
            - context:
                cluster: lab
                user: faultline
              name: lab
            current-context: lab
            users:
            - name: faultline
              user:
                token: k8s-t0ken
            """
            .write(toFile: "\(relay.directory)/kubeconfig", atomically: true, encoding: .utf8)
        let credentials = try KubernetesCredentials.kubeconfig(
            "\(relay.directory)/kubeconfig", privateDirectory: "\(relay.directory)/private")
        let action = KubernetesAction(credentials: credentials, timeout: .seconds(10))

        let state = try action.quarantine(quarantineRequest("gpu-9"))
        #expect(state.quarantined && state.ours)
        #expect(KubernetesAction.taints(of: try #require(api.node("gpu-9"))).first?["value"] as? String == "gpu.down")
        let seen = api.requests.withLock { $0 }
        #expect(seen.map(\.method) == ["GET", "PATCH", "GET"])
        #expect(seen.allSatisfy { $0.authorization == "Bearer k8s-t0ken" })
        #expect(seen[1].contentType == "application/merge-patch+json")
        #expect(try !action.release(node: "gpu-9").quarantined)
        #expect(throws: ActionError.self) { try action.status(node: "gpu-404") }
    }

    @Test func aServerTheCADidNotSignIsNeverTold() throws {
        let api = try FakeAPIServer(nodes: ["gpu-10": FakeAPIServer.node("gpu-10")])
        defer { api.stop() }
        let relay = try TLSRelay(upstream: api.address!)
        defer { relay.stop() }
        let credentials = KubernetesCredentials(
            server: "https://127.0.0.1:\(relay.port)", certificateAuthority: "\(relay.directory)/other-ca.crt",
            token: .inline("must-not-leak"))
        let action = KubernetesAction(credentials: credentials, timeout: .seconds(10))
        do {
            _ = try action.quarantine(quarantineRequest("gpu-10"))
            Issue.record("a quarantine through an unverified server succeeded")
        } catch {
            #expect(error.description.contains("certificate"))
        }
        #expect(api.requests.withLock { $0.isEmpty })
        #expect((api.node("gpu-10")?["spec"] as? [String: Any])?["unschedulable"] as? Bool == false)
    }
}
