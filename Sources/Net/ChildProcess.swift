// A program started to keep running beside us (the demo's correlator and agents): spawned into a
// process group its owner chooses, standard input from /dev/null, standard output and error appended
// to files; signalled, polled and reaped by its owner. `SubprocessRunner` is for programs run to
// completion; both spawn through `spawnProcess`.

@preconcurrency import Glibc
import Synchronization

public final class ChildProcess: Sendable {
    public let pid: pid_t
    /// What it is, for messages (the program and its first arguments).
    public let name: String
    /// The raw wait status once reaped.
    private let reaped = Mutex<Int32?>(nil)

    /// Starts `arguments[0]` (a path, or a name looked up in PATH) in process group `processGroup`
    /// (0: a new group that the child leads, whose id is its pid), appending its standard output to
    /// `output` and its standard error to `errors` (created with mode 0600 when missing).
    public init(
        _ arguments: [String], environment: [String: String] = [:], processGroup: pid_t = 0,
        output: String, errors: String
    ) throws(SystemCallError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        pid = try spawnProcess(arguments, environment: environment, actions: &actions, processGroup: processGroup)
            .get()
        name = arguments.prefix(3).joined(separator: " ")
    }

    /// Sends `signal` to the process (not its group); nothing once it has been reaped.
    public func signal(_ signal: Int32) {
        reaped.withLock { status in
            if status == nil { _ = kill(pid, signal) }
        }
    }

    /// The raw wait status once it has ended (reaping it), nil while it runs.
    public func poll() -> Int32? {
        reaped.withLock { status in
            if status == nil {
                var raw: Int32 = 0
                let waited = waitpid(pid, &raw, WNOHANG)
                if waited == pid { status = raw } else if waited < 0 && errno == ECHILD { status = -1 }
            }
            return status
        }
    }

    public var isRunning: Bool { poll() == nil }

    /// Waits up to `timeout` for it to end; whether it did.
    public func wait(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            guard ContinuousClock.now < deadline else { return false }
            usleep(20_000)
        }
        return true
    }

    /// "exit status 0", "signal 9", "running": for messages.
    public var outcome: String {
        guard let status = poll() else { return "running" }
        if status == -1 { return "reaped elsewhere" }
        return status & 0x7F == 0 ? "exit status \((status >> 8) & 0xFF)" : "signal \(status & 0x7F)"
    }
}
