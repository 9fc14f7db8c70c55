#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// What the runtime shell reads from the operating system: the wall clock and the facts the
// four-letter words report. Nothing below the shell reads any of these; the replica gets time as
// the `nowMs` of each step.

enum SystemFacts {
    /// The replica's time: milliseconds since the Unix epoch that never jump (`SteadyWallClock`).
    static func wallClockMs() -> Int64 {
        steadyClock.nowMs()
    }

    private static let steadyClock = SteadyWallClock(wallMs: realTimeMs, monotonicMs: monotonicMs)

    /// Milliseconds since the Unix epoch by the system's real-time clock, which an operator or
    /// NTP may step forwards or backwards.
    static func realTimeMs() -> Int64 {
        milliseconds(of: CLOCK_REALTIME)
    }

    /// Milliseconds of the monotonic clock: never stepped (slewed by NTP, like the real-time one).
    @Sendable static func monotonicMs() -> Int64 {
        milliseconds(of: CLOCK_MONOTONIC)
    }

    private static func milliseconds(of clock: clockid_t) -> Int64 {
        var now = timespec()
        clock_gettime(clock, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return string(fromCString: buffer)
    }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "unknown" }
        return string(fromCString: buffer)
    }

    static func environmentVariable(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// (sysname, release, machine) from uname(2).
    static func operatingSystem() -> (name: String, version: String, architecture: String) {
        var info = utsname()
        guard uname(&info) == 0 else { return ("unknown", "unknown", "unknown") }
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in
                let bytes = raw.prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
        }
        return (field(info.sysname), field(info.release), field(info.machine))
    }

    /// Open file descriptors of this process, counted in /proc/self/fd; -1 where there is no /proc.
    static func openFileDescriptorCount() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in raw.first ?? 0 }
            if name != UInt8(ascii: ".") { count += 1 }
        }
        // The directory stream itself holds one descriptor while counting.
        return max(0, count - 1)
    }

    /// Bytes of the regular files directly inside `path` (the store's database, WAL and shared
    /// memory file); 0 for "" or a directory that cannot be read.
    static func directoryBytes(_ path: String) -> Int64 {
        guard !path.isEmpty, let directory = opendir(path) else { return 0 }
        defer { closedir(directory) }
        var total: Int64 = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name != ".", name != ".." else { continue }
            var info = stat()
            if stat(path + "/" + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
                total += Int64(info.st_size)
            }
        }
        return total
    }

    /// Returns free heap memory to the system (glibc's `malloc_trim`); nothing elsewhere.
    static func releaseFreeMemory() {
        #if canImport(Glibc)
        // malloc.h is not part of the Glibc module: look the function up.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        typealias MallocTrim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
        #endif
    }

    /// The soft limit on open file descriptors; -1 when unknown or unlimited.
    static func maxFileDescriptorCount() -> Int {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur != rlim_t.max else { return -1 }
        return Int(clamping: limit.rlim_cur)
    }

    /// The `envi` lines MiniZK reports after `zookeeper.version`, in ZooKeeper's order where
    /// ZooKeeper has the same key. Java-only keys (java.version, java.class.path, ...) are left out.
    static func environment() -> [EnvironmentEntry] {
        let os = operatingSystem()
        return [
            EnvironmentEntry("host.name", hostName()),
            EnvironmentEntry("os.name", os.name),
            EnvironmentEntry("os.arch", os.architecture),
            EnvironmentEntry("os.version", os.version),
            EnvironmentEntry("user.name", environmentVariable("USER") ?? "unknown"),
            EnvironmentEntry("user.home", environmentVariable("HOME") ?? "unknown"),
            EnvironmentEntry("user.dir", currentDirectory()),
        ]
    }

    private static func string(fromCString buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Wall-clock time that follows the monotonic clock: the real-time clock is read once, when the
/// process first asks, and advanced by the monotonic clock from then on. A step of the system
/// clock (an operator's `date -s`, NTP correcting a large offset, a virtual machine resumed) moves
/// nothing: sessions do not all expire at once when it jumps forwards, and a dead leader is still
/// noticed on time when it jumps backwards, as ZooKeeper measures its timeouts on a monotonic
/// clock too. Znode times (`ctime`, `mtime`) keep following the real time up to the steps since
/// start-up, which a restart takes in.
struct SteadyWallClock: Sendable {
    private let anchorWallMs: Int64
    private let anchorMonotonicMs: Int64
    private let monotonicMs: @Sendable () -> Int64

    init(wallMs: () -> Int64, monotonicMs: @escaping @Sendable () -> Int64) {
        self.anchorMonotonicMs = monotonicMs()
        self.anchorWallMs = wallMs()
        self.monotonicMs = monotonicMs
    }

    func nowMs() -> Int64 {
        anchorWallMs + (monotonicMs() - anchorMonotonicMs)
    }
}
