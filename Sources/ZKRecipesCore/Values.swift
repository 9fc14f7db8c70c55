import ZKProtocol

/// Byte encodings Curator's value recipes write, and the optimistic update step they share.
///
/// These are small pure functions rather than machines: an optimistic update is a read, a
/// compute, and a versioned write retried on `badVersion`; ZKRecipes runs that loop.
public enum CuratorValues {
    /// `DistributedAtomicLong`: 8 bytes, big-endian (`ByteBuffer.putLong`). A missing node, or
    /// one with no data, reads as 0.
    public static func encodeLong(_ value: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }

    public static func decodeLong(_ bytes: [UInt8]) -> Int64? {
        if bytes.isEmpty { return 0 }
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(Int64(0)) { ($0 << 8) | Int64($1) }
    }

    /// `SharedCount`: 4 bytes, big-endian (`ByteBuffer.putInt`).
    public static func encodeInt(_ value: Int32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
    }

    public static func decodeInt(_ bytes: [UInt8]) -> Int32? {
        guard bytes.count == 4 else { return nil }
        return bytes.reduce(Int32(0)) { ($0 << 8) | Int32($1) }
    }
}

/// One step of an optimistic update (`DistributedAtomicValue.trySet` without the mutex
/// promotion): what to write given what was read.
public enum OptimisticWrite: Sendable, Hashable {
    /// The node is missing: create it with these bytes (nodeExists means someone else did: read again).
    case create([UInt8])
    /// Replace the data if the version is still the one read (badVersion: read again).
    case setData([UInt8], version: Int32)

    /// The write that replaces `read` (nil: the node is missing) by `newValue`.
    public static func plan(read: (data: [UInt8], version: Int32)?, newValue: [UInt8]) -> OptimisticWrite {
        guard let read else { return .create(newValue) }
        return .setData(newValue, version: read.version)
    }
}

/// `ItemSerializer`, the node data of `DistributedQueue` items: version 0x00010001 (Int32), then for
/// each message opcode 1, its length (Int32) and bytes, then opcode 2. All big-endian.
public enum QueueItemCodec {
    static let version: Int32 = 0x0001_0001
    static let itemOpcode: UInt8 = 1
    static let eofOpcode: UInt8 = 2

    public static func encode(_ messages: [[UInt8]]) -> [UInt8] {
        var bytes = CuratorValues.encodeInt(version)
        for message in messages {
            bytes.append(itemOpcode)
            bytes += CuratorValues.encodeInt(Int32(message.count))
            bytes += message
        }
        bytes.append(eofOpcode)
        return bytes
    }

    /// The messages, or nil when the bytes are not in this format.
    public static func decode(_ bytes: [UInt8]) -> [[UInt8]]? {
        guard bytes.count >= 5, CuratorValues.decodeInt(Array(bytes[0..<4])) == version else { return nil }
        var messages: [[UInt8]] = []
        var index = 4
        while index < bytes.count {
            let opcode = bytes[index]
            index += 1
            if opcode == eofOpcode { return messages }
            guard opcode == itemOpcode, index + 4 <= bytes.count,
                  let size = CuratorValues.decodeInt(Array(bytes[index..<index + 4])), size >= 0,
                  index + 4 + Int(size) <= bytes.count
            else { return nil }
            index += 4
            messages.append(Array(bytes[index..<index + Int(size)]))
            index += Int(size)
        }
        return nil
    }

    /// The order consumers take items in: by name (`queue-<seq>`, or
    /// `queue-<priority><seq>` for `DistributedPriorityQueue`).
    public static func ordered(_ children: [String]) -> [String] {
        children.filter { $0.hasPrefix(CuratorNames.queueItem) }.sorted()
    }

    /// `DistributedPriorityQueue.priorityToString`: "0" for negative priorities, "1" otherwise,
    /// then the 32 bits as eight upper-case hex digits; lower sorts (and is consumed) first.
    public static func priorityPrefix(_ priority: Int32) -> String {
        let text = String(UInt32(bitPattern: priority), radix: 16, uppercase: true)
        return (priority < 0 ? "0" : "1") + String(repeating: "0", count: 8 - text.count) + text
    }
}
