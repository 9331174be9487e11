// Every fault class the engine can raise has a runbook named after it (runbooks/<class>.md).

import Engine
import Foundation
import Testing

struct RunbookTests {
    @Test(arguments: faultClasses)
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
