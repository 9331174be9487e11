// Every fault class the engine can raise has a runbook named after it (runbooks/<class>.md).

import Foundation
import Testing

struct RunbookTests {
    static let classes: [String] =
        ["gpu", "link", "switch"].flatMap { kind in ["degraded", "loss", "down"].map { "\(kind).\($0)" } }
        + [
            "node.degraded", "node.loss", "node.unreachable", "gpu.port-down", "gpu.off-bus",
            "gpu.pcie-downtrained",
        ]

    @Test(arguments: classes)
    func everyFaultClassHasARunbook(faultClass: String) throws {
        let runbooks = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("runbooks")
        let text = try String(
            contentsOf: runbooks.appendingPathComponent("\(faultClass).md"), encoding: .utf8)
        for section in [
            "## What it means", "## How to check", "## Remediation ladder", "## Return to service",
        ] {
            #expect(text.contains(section), "\(faultClass).md lacks \(section)")
        }
    }

}
