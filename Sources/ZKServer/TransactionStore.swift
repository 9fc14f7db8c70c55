import ZKProtocol

/// Where the runtime shell makes transactions durable before the replica may answer for them.
///
/// `append` returns only once every transaction it was given is durable (for a disk store: written
/// and synced, as one group commit), and returns the zxid of the last one. The shell then tells the
/// replica `.persisted(upTo:)` that zxid. A store that cannot make a batch durable throws; the shell
/// then stops serving, because answering a write that may be lost breaks ZooKeeper's promise.
///
/// A store is used only from the replica's event loop, so it needs no locking of its own.
public protocol TransactionStore: AnyObject {
    /// Makes `transactions` (non-empty, zxids increasing) durable and returns the last zxid.
    func append(_ transactions: [Transaction]) throws -> Zxid
}

/// The store for a server whose data lives in memory only: nothing survives a restart, so there is
/// nothing to write. It checks the zxid order it is given and counts, so `dirs`-style reports and
/// tests can see what went through it.
public final class InMemoryTransactionStore: TransactionStore {
    public private(set) var lastZxid: Zxid = 0
    public private(set) var appendedCount: Int = 0
    public private(set) var batchCount: Int = 0

    public init() {}

    public func append(_ transactions: [Transaction]) throws -> Zxid {
        precondition(!transactions.isEmpty, "append of an empty batch")
        for transaction in transactions {
            precondition(
                transaction.zxid > lastZxid,
                "transaction zxid 0x\(String(transaction.zxid, radix: 16)) not after 0x\(String(lastZxid, radix: 16))")
            lastZxid = transaction.zxid
        }
        appendedCount += transactions.count
        batchCount += 1
        return lastZxid
    }
}
