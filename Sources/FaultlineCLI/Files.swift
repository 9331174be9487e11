// Reading input files and writing output files for commands, with the exit statuses sysexits
// gives them (66 cannot open input, 73 cannot create output) and bounded sizes.

import Foundation

/// The whole file, refusing more than `limit` bytes.
func readFile(_ path: String, limit: Int = 256 << 20) throws(CommandError) -> Data {
    let url = URL(fileURLWithPath: path)
    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
    guard let size else { throw CommandError.noInput("cannot open \(path): no such file or not readable") }
    guard size <= limit else {
        throw CommandError.data("\(path) is \(size) bytes, over the limit of \(limit)")
    }
    do {
        return try Data(contentsOf: url)
    } catch {
        throw CommandError.noInput("cannot read \(path): \(error.localizedDescription)")
    }
}

/// Writes `data` to `path` through a temporary file and a rename, so that a reader never sees half
/// a file; `-` writes to standard output.
func writeOutput(_ data: Data, to path: String?, io: some CommandIO) throws(CommandError) {
    guard let path, path != "-" else {
        io.write(String(decoding: data, as: UTF8.self))
        return
    }
    do {
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw CommandError.cannotCreate("cannot write \(path): \(error.localizedDescription)")
    }
}
