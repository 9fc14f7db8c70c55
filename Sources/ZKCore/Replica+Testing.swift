import ZKProtocol

extension Replica {
    /// Expires `sessionId` now, the way the leader expires a session whose deadline passed: its
    /// deadline is moved to the current time and a tick proposes the closeSession transaction
    /// (with the internal cxid) through the log. Only the leader holds deadlines; on any other
    /// replica, or for a session it does not know, nothing happens and `Ready` is empty.
    public mutating func expireSessionNow(_ sessionId: Int64, nowMs: Int64) -> Ready {
        guard isLeader, let session = sessions[sessionId], !session.closing else { return Ready() }
        if nowMs > self.nowMs { self.nowMs = nowMs }
        sessions[sessionId]!.expiresAtMs = min(session.expiresAtMs, self.nowMs)
        return step(.tick, nowMs: self.nowMs)
    }

    /// The password a client must present to resume `sessionId` on any member.
    public func sessionPassword(for sessionId: Int64) -> [UInt8] {
        password(for: sessionId)
    }
}
