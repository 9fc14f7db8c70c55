/// The item names of Curator 5.4's `DistributedIdQueue` and `DistributedDelayQueue`, both
/// `DistributedQueue`s (items `queue-...<seq>`, data in `ItemSerializer`'s framing) whose item
/// names carry one more field between two `|`:
///
/// - id queue: `queue-|<id>|<seq>`, the id with `/` and `|` replaced by `_`; items are taken in
///   the order of the name without the id field (`queue-<seq>`: the order of the puts);
/// - delay queue: `queue-|<epoch>|<seq>`, the epoch (milliseconds) the item becomes available at
///   in upper-case hex of at least eight digits (`String.format("%08X")`); items are taken in
///   epoch order, and none before its epoch.
public enum QueueItemNames {
    public static let separator: Character = "|"

    /// `DistributedIdQueue.fixId`.
    public static func fixId(_ id: String) -> String {
        String(id.map { $0 == "/" || $0 == separator ? "_" : $0 })
    }

    /// The name (before the sequence number) to create for an item with `id`.
    public static func idItemPrefix(_ id: String) -> String {
        CuratorNames.queueItem + "|" + fixId(id) + "|"
    }

    /// `DistributedIdQueue.parseId`: the id field and the name without it; a name without two
    /// separators is its own id and cleaned name, as in Curator.
    public static func parseId(_ name: String) -> (id: String, cleaned: String) {
        guard let first = name.firstIndex(of: separator),
              let second = name[name.index(after: first)...].firstIndex(of: separator)
        else { return (name, name) }
        return (String(name[name.index(after: first)..<second]),
                String(name[..<first]) + String(name[name.index(after: second)...]))
    }

    /// The id queue's order: by cleaned name.
    public static func orderedById(_ children: [String]) -> [String] {
        children.filter { $0.hasPrefix(CuratorNames.queueItem) }.sorted { lhs, rhs in
            let l = parseId(lhs).cleaned, r = parseId(rhs).cleaned
            return l == r ? lhs < rhs : l < r
        }
    }

    /// `DistributedDelayQueue.epochToString`.
    public static func delayItemPrefix(untilEpochMs epoch: Int64) -> String {
        let text = String(UInt64(bitPattern: epoch), radix: 16, uppercase: true)
        return CuratorNames.queueItem + "|" + String(repeating: "0", count: max(0, 8 - text.count)) + text + "|"
    }

    /// `DistributedDelayQueue.getEpoch`: the hex between the last two separators, 0 when there is
    /// none or it does not parse.
    public static func epoch(of name: String) -> Int64 {
        guard let second = name.lastIndex(of: separator), second > name.startIndex,
              let first = name[..<second].lastIndex(of: separator), first > name.startIndex,
              name.index(after: first) < second,
              let value = UInt64(name[name.index(after: first)..<second], radix: 16)
        else { return 0 }
        return Int64(bitPattern: value)
    }

    /// The delay queue's order: by epoch, then by name (Curator's sort is stable over the
    /// server's child order; the name makes ties deterministic, oldest put first).
    public static func orderedByDelay(_ children: [String]) -> [String] {
        children.filter { $0.hasPrefix(CuratorNames.queueItem) }.sorted { lhs, rhs in
            let l = epoch(of: lhs), r = epoch(of: rhs)
            return l == r ? lhs < rhs : l < r
        }
    }
}
