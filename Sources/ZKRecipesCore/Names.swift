import ZKProtocol

/// Znode names as Apache Curator 5.4 writes them, so that Swift and Java processes using the
/// same paths coordinate.
///
/// A *protected* node (Curator's `withProtection()`) is named `_c_<uuid>-<name><sequence>`: the
/// prefix lets its creator find it again after a create whose reply was lost.
public enum CuratorNames {
    /// `CreateBuilderImpl.PROTECTED_PREFIX`.
    public static let protectedMarker = "_c_"
    /// `InterProcessMutex`'s lock name (also `LeaderSelector`'s, which uses a mutex).
    public static let lock = "lock-"
    /// `LeaderLatch.LOCK_NAME`.
    public static let latch = "latch-"
    /// `InterProcessReadWriteLock`'s names.
    public static let readLock = "__READ__"
    public static let writeLock = "__WRIT__"
    /// `InterProcessSemaphoreV2`'s lease name.
    public static let lease = "lease-"
    /// `DistributedQueue.QUEUE_PREFIX`.
    public static let queueItem = "queue-"

    /// `_c_<uuid>-`.
    public static func protectedPrefix(_ uuid: String) -> String { "\(protectedMarker)\(uuid)-" }

    /// The path to create for a protected sequential node: `<base>/_c_<uuid>-<name>`.
    public static func protectedPath(base: String, uuid: String, name: String) -> String {
        join(base, protectedPrefix(uuid) + name)
    }

    /// `StandardLockInternalsDriver.fixForSorting`: what follows the last occurrence of the lock
    /// name (the sequence number), or the whole name when it does not occur.
    public static func sortKey(_ node: String, lockName: String) -> Substring {
        let name = Array(node.utf8), lock = Array(lockName.utf8)
        guard !lock.isEmpty, name.count >= lock.count else { return Substring(node) }
        var start = name.count - lock.count
        while start >= 0 {
            if Array(name[start..<start + lock.count]) == lock {
                let index = node.utf8.index(node.utf8.startIndex, offsetBy: start + lock.count)
                return node[index...]
            }
            start -= 1
        }
        return Substring(node)
    }

    /// Children sorted as `LockInternals.getSortedChildren` sorts them (by sort key, as strings:
    /// sequence numbers are zero-padded to ten digits, so this is numeric order).
    public static func sorted(_ children: [String], lockName: String) -> [String] {
        children.sorted { lhs, rhs in
            let l = sortKey(lhs, lockName: lockName), r = sortKey(rhs, lockName: lockName)
            return l == r ? lhs < rhs : l < r
        }
    }

    /// The order of Curator's read-write lock driver: each name's suffix taken in turn.
    public static func sorted(_ children: [String], lockNames: [String]) -> [String] {
        func key(_ node: String) -> Substring {
            lockNames.reduce(Substring(node)) { sortKey(String($0), lockName: $1) }
        }
        return children.sorted { lhs, rhs in
            let l = key(lhs), r = key(rhs)
            return l == r ? lhs < rhs : l < r
        }
    }

    /// The sequence number at the end of a sequential node's name (nil when it has none).
    public static func sequence(of node: String) -> Int64? {
        let digits = node.reversed().prefix { $0.isASCII && $0.isNumber }
        guard digits.count >= 10 else { return nil }
        return Int64(String(digits.reversed()))
    }

    /// The last component of a path.
    public static func nodeName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// The parent of a path ("/" for top-level nodes).
    public static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// `ZKPaths.makePath(parent, child)`.
    public static func join(_ parent: String, _ child: String) -> String {
        parent.hasSuffix("/") ? parent + child : parent + "/" + child
    }

    /// Every proper ancestor of `path` except "/", outermost first (`/a/b/c` → `/a`, `/a/b`).
    public static func ancestors(_ path: String) -> [String] {
        var result: [String] = []
        var current = parent(path)
        while current != "/" {
            result.append(current)
            current = parent(current)
        }
        return result.reversed()
    }
}

/// Where protected-node UUIDs come from. Machines take one instead of reading a random source;
/// `SeededUUIDs` gives reproducible ones (tests, the simulator), ZKRecipes passes system UUIDs.
public protocol UUIDSource {
    /// A lower-case UUID string as `java.util.UUID.toString()` formats it (8-4-4-4-12 hex digits).
    mutating func next() -> String
}

/// Version-4-shaped UUIDs from a SplitMix64 generator.
///
/// The seed is mixed before it starts the stream: SplitMix64 steps its state by a fixed gamma, so
/// two seeds a multiple of it apart would give the same words shifted, and one program's UUIDs
/// would reappear in another's (a restarted lock contender, seeded `seed + incarnation * gamma`,
/// found its earlier incarnation's node by the protected prefix and took it for its own:
/// `minizk sim --seed 116 --recipes on`).
public struct SeededUUIDs: UUIDSource, Sendable {
    var words: SplitMix64
    public init(seed: UInt64) {
        var mixer = SplitMix64(seed: seed)
        words = SplitMix64(seed: mixer.next())
    }

    mutating func nextWord() -> UInt64 { words.next() }

    public mutating func next() -> String {
        var high = nextWord(), low = nextWord()
        high = (high & ~0xF000) | 0x4000  // version 4
        low = (low & ~(0xC << 60)) | (0x8 << 60)  // IETF variant
        return formatUUID(high: high, low: low)
    }
}

/// Formats 128 bits as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
public func formatUUID(high: UInt64, low: UInt64) -> String {
    func hex(_ value: UInt64, _ digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
    return "\(hex(high >> 32, 8))-\(hex((high >> 16) & 0xFFFF, 4))-\(hex(high & 0xFFFF, 4))-"
        + "\(hex(low >> 48, 4))-\(hex(low & 0xFFFF_FFFF_FFFF, 12))"
}
