// Reading sysfs below a root path (the real "/" or a fixture tree): bounded reads of small
// attribute files, sorted directory listings, and symlinks resolved to paths inside the root.

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A problem with the sysfs tree, naming the path.
public struct DiscoveryError: Error, Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Reads sysfs attribute files under `root`. Paths given to it are relative to the root
/// (`sys/class/infiniband`); paths it returns are too.
public struct SysfsReader: Sendable {
    /// The most bytes read from one attribute file (sysfs attributes are at most a page).
    public static let maximumFileSize = 4096
    /// The most entries taken from one directory.
    public static let maximumEntries = 4096

    public let root: String

    /// `root` is "/" on a live system, or a fixture directory.
    public init(root: String = "/") {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// The absolute path of `relative`.
    public func absolute(_ relative: String) -> String {
        root == "/" ? "/" + relative : root + "/" + relative
    }

    /// The text of an attribute file without its trailing newline, or nil if it cannot be read
    /// (absent attributes are normal: not every device has every file).
    public func text(_ relative: String) -> String? {
        let descriptor = open(absolute(relative), O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: Self.maximumFileSize)
        var count = 0
        while count < buffer.count {
            let n = buffer.withUnsafeMutableBytes {
                read(descriptor, $0.baseAddress! + count, $0.count - count)
            }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            count += n
        }
        guard let text = String(validating: buffer[..<count], as: UTF8.self) else { return nil }
        return text.trimmingWhitespace
    }

    /// An attribute parsed as an integer: decimal, or hex with 0x.
    public func integer(_ relative: String) -> Int? {
        guard let text = text(relative) else { return nil }
        if text.hasPrefix("0x") { return Int(text.dropFirst(2), radix: 16) }
        return Int(text)
    }

    /// The names in a directory, sorted, without "." and ".."; empty if it does not exist.
    public func entries(_ relative: String) -> [String] {
        guard let directory = opendir(absolute(relative)) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while names.count < Self.maximumEntries, let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// True if the path exists (following symlinks).
    public func exists(_ relative: String) -> Bool {
        var info = stat()
        return stat(absolute(relative), &info) == 0
    }

    /// `relative` with every symlink resolved, relative to the root again; nil if it does not
    /// resolve or leads outside the root.
    public func resolved(_ relative: String) -> String? {
        guard let real = realpath(absolute(relative), nil) else { return nil }
        defer { free(real) }
        let path = String(cString: real)
        if root == "/" { return String(path.dropFirst()) }
        guard let rootReal = realpath(root, nil) else { return nil }
        defer { free(rootReal) }
        let base = String(cString: rootReal)
        guard path.hasPrefix(base + "/") else { return nil }
        return String(path.dropFirst(base.count + 1))
    }
}

extension String {
    var trimmingWhitespace: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}
