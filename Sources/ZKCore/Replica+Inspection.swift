import ZKProtocol

extension Replica {
    /// For the simulator's checkers: the transactions applied after `zxid`, oldest first; nil
    /// when they are no longer all held in memory (beyond the DIFF window, or replaced by a
    /// SNAP), so that a checker knows it cannot see them one by one.
    public func appliedTransactions(after zxid: Zxid) -> [Transaction]? {
        guard logBase <= zxid else { return nil }
        var result: [Transaction] = []
        for txn in applied.reversed() {
            if txn.zxid <= zxid { break }
            result.append(txn)
        }
        return result.reversed()
    }
}
