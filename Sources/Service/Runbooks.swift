// A directory of runbooks read and checked: a valid header block in every one, one for every fault
// class the engine raises, none for a class it does not. `faultline rules check` reports the
// problems; `faultline serve` and `faultline replay` take the release policy from the headers.

import Engine
import Foundation
import Policy

public enum Runbooks {
    /// The headers of `directory`'s runbooks (every `*.md` but README.md), or every problem found
    /// as `FILE:LINE: message`.
    public static func load(directory: String) throws(InvalidRunbooks) -> [RunbookHeader] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { $0.hasSuffix(".md") && $0 != "README.md" && !$0.hasPrefix(".") }
                .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        } catch {
            throw InvalidRunbooks(problems: ["\(directory): cannot list it: \(error.localizedDescription)"])
        }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        var problems: [String] = []
        var headers: [RunbookHeader] = []
        for name in names {
            let file = prefix + name
            guard let data = FileManager.default.contents(atPath: file), data.count <= 1 << 20 else {
                problems.append("\(file): cannot read it (or it is over 1 MiB)")
                continue
            }
            do {
                headers.append(try RunbookHeader.parse(String(decoding: data, as: UTF8.self), file: file))
            } catch {
                problems += error.errors.map(\.description)
            }
            let faultClass = String(name.dropLast(3))
            if !faultClasses.contains(faultClass) {
                problems.append(
                    "\(file):1: no fault class '\(faultClass)': the engine raises \(faultClasses.joined(separator: ", "))")
            }
        }
        for faultClass in faultClasses where !names.contains("\(faultClass).md") {
            problems.append("\(prefix)\(faultClass).md: missing: every fault class the engine raises needs its runbook")
        }
        guard problems.isEmpty else { throw InvalidRunbooks(problems: problems) }
        return headers
    }
}

/// What is wrong with a runbooks directory, one `FILE:LINE: message` per problem.
public struct InvalidRunbooks: Error, Sendable, Equatable, CustomStringConvertible {
    public let problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}
