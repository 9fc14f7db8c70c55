import ZKProtocol

/// A vote for a leader, and what makes it good: the candidate's epoch and last zxid.
///
/// Votes are totally ordered by (epoch, zxid, leader): the candidate with the newest history
/// wins, and the server id breaks ties, so every replica that sees the same votes picks the same
/// leader.
public struct Vote: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var leader: Int64
    public var zxid: Zxid
    public var epoch: Int64
    public init(leader: Int64, zxid: Zxid, epoch: Int64) {
        self.leader = leader
        self.zxid = zxid
        self.epoch = epoch
    }
    public static func < (a: Vote, b: Vote) -> Bool {
        #if MINIZK_BUG_VOTE_ORDER_NOT_TOTAL
        return (a.epoch, a.zxid) < (b.epoch, b.zxid)  // Planted bug: equal histories do not compare.
        #else
        return (a.epoch, a.zxid, a.leader) < (b.epoch, b.zxid, b.leader)
        #endif
    }
    public var description: String { "vote(\(leader), 0x\(String(zxid, radix: 16)), e\(epoch))" }
}

public enum ServerState: Int32, Sendable, Hashable {
    case looking = 0
    case following = 1
    case leading = 2
}

/// What replicas exchange during election: a vote, the sender's election round and its state.
public struct Notification: Sendable, Hashable {
    public var vote: Vote
    public var round: Int64
    public var state: ServerState
    public init(vote: Vote, round: Int64, state: ServerState) {
        self.vote = vote
        self.round = round
        self.state = state
    }
}

/// Fast leader election, in the manner of ZooKeeper's.
///
/// A looking replica votes for itself and tells everyone. Whenever it hears a better vote in its
/// round it adopts and re-broadcasts it; a notification from a later round moves it to that round
/// and drops what it had collected. Once a quorum of the round's votes agree with its own it waits
/// `finalizeWaitMs` for a better vote (none can come when every member has voted) and then
/// decides. Replicas already following or leading answer lookers with the vote they settled on;
/// a looker that sees a quorum of those, including the leader itself claiming to lead, joins
/// them. Unanswered notifications are re-sent with exponential back-off.
///
/// Only voters count, and a decision needs a quorum of every configuration the replica knows may
/// be in force (`voterSets`: the committed one and any logged but not applied), as the leader
/// it elects will need to establish itself. A replica whose view of the
/// configuration is stale (it missed reconfigurations that changed the voters) may never see a
/// quorum of the voters it knows of, or may hold them to be others; after `staleViewAfterMs` of
/// looking it follows any server that says it leads. That choice does not endanger safety: the leader decides what commits,
/// with quorums of its own configurations, and steps down for a follower with a newer history;
/// following it brings the replica's configuration up to date.
struct LeaderElection: Sendable {
    let me: Int64
    /// Every voter of any of `voterSets`.
    let members: [Int64]
    let voterSets: [[Int64]]
    let finalizeWaitMs: Int64
    let resendMinMs: Int64
    let resendMaxMs: Int64
    private(set) var round: Int64
    private(set) var vote: Vote
    private var votes: [Int64: Vote] = [:]
    private var settled: [Int64: Notification] = [:]
    private var finalizeAtMs: Int64?
    private var resendAtMs: Int64
    private var resendIntervalMs: Int64
    private let startedAtMs: Int64
    var staleViewAfterMs: Int64 { 2 * resendMaxMs }

    /// Messages the election wants sent, and the leader once decided.
    struct Step {
        var broadcast: Notification?
        var replies: [(to: Int64, Notification)] = []
        var decision: Vote?
    }

    init(me: Int64, voterSets: [[Int64]], round: Int64, vote: Vote, nowMs: Int64, finalizeWaitMs: Int64, resendMinMs: Int64, resendMaxMs: Int64) {
        self.me = me
        self.voterSets = voterSets
        self.members = Array(Set(voterSets.joined())).sorted()
        self.finalizeWaitMs = finalizeWaitMs
        self.resendMinMs = resendMinMs
        self.resendMaxMs = resendMaxMs
        self.round = round
        self.vote = vote
        self.votes = [me: vote]
        self.resendAtMs = nowMs + resendMinMs
        self.resendIntervalMs = resendMinMs
        self.startedAtMs = nowMs
    }

    /// Whether a quorum of every voter set follows (or leads as) `leader` out of election.
    private func isFollowedByQuorum(_ leader: Int64) -> Bool {
        isQuorum { self.settled[$0]?.vote.leader == leader }
    }

    /// Whether the servers `count` says yes to are a quorum of every voter set.
    private func isQuorum(_ count: (Int64) -> Bool) -> Bool {
        voterSets.allSatisfy { set in set.filter(count).count > set.count / 2 }
    }

    var notification: Notification { Notification(vote: vote, round: round, state: .looking) }

    /// The first step: announce the own vote (and decide at once with a quorum of one).
    mutating func start(nowMs: Int64) -> Step {
        var step = Step(broadcast: notification)
        step.decision = check(nowMs: nowMs)
        return step
    }

    mutating func receive(from sender: Int64, _ n: Notification, nowMs: Int64) -> Step {
        var step = Step()
        if n.state == .leading, n.vote.leader == sender, sender != me, nowMs - startedAtMs >= staleViewAfterMs {
            round = n.round
            step.decision = n.vote
            return step
        }
        guard members.contains(sender) else {
            // A leader this replica does not count as a voter (its view of the configuration is
            // stale): its claim still counts when a quorum of the known voters follow it.
            if n.state == .leading, n.vote.leader == sender, sender != me {
                settled[sender] = n
                if isFollowedByQuorum(sender) {
                    round = n.round
                    step.decision = n.vote
                }
            }
            return step
        }
        switch n.state {
        case .looking:
            // A replica that looks again no longer follows or leads.
            settled[sender] = nil
            if n.round > round {
                round = n.round
                votes = [:]
                vote = max(vote, n.vote)
                votes[me] = vote
                finalizeAtMs = nil
                step.broadcast = notification
            } else if n.round < round {
                step.replies.append((sender, notification))
                return step
            } else if n.vote > vote {
                vote = n.vote
                votes[me] = vote
                finalizeAtMs = nil
                step.broadcast = notification
            }
            votes[sender] = n.vote
            step.decision = check(nowMs: nowMs)
        case .following, .leading:
            if n.round == round {
                votes[sender] = n.vote
                if isSupported(n.vote) && leaderClaims(n.vote, round: n.round) {
                    step.decision = n.vote
                    return step
                }
            }
            settled[sender] = n
            // Replicas that joined the leader at different times settled on votes that differ in
            // zxid and epoch: out of election only the leader counts (as in ZooKeeper, whose votes
            // out of election compare the leader alone).
            if isFollowedByQuorum(n.vote.leader) && leaderClaims(n.vote, round: nil) {
                round = n.round
                step.decision = n.vote
            } else if n.vote.leader != me, !members.contains(n.vote.leader) {
                // Voters follow a server this replica does not know as a voter: ask it directly
                // (each time, so that its answers keep coming while this replica looks).
                step.replies.append((n.vote.leader, notification))
            }
        }
        return step
    }

    /// The leader of `vote` must itself say it leads (or be this replica), else a quorum may be
    /// following a leader that has gone.
    ///
    /// Replicas that still follow this one from an earlier round do not make it lead again: it
    /// looks because it gave up leading (maybe for a follower with a newer history), and only
    /// votes of its current round may elect it (as in ZooKeeper's `checkLeader`).
    private func leaderClaims(_ vote: Vote, round: Int64?) -> Bool {
        if vote.leader == me { return round == self.round && members.contains(me) }
        guard let claim = settled[vote.leader] else { return false }
        return claim.state == .leading && claim.vote.leader == vote.leader
    }

    /// Whether a quorum of every voter set votes `vote` (a non-voter's own vote never counts).
    private func isSupported(_ vote: Vote) -> Bool {
        isQuorum { voter in
            if let cast = self.votes[voter] { return cast.leader == vote.leader && cast.zxid == vote.zxid && cast.epoch == vote.epoch }
            return voter == self.me && vote == self.vote
        }
    }

    private mutating func check(nowMs: Int64) -> Vote? {
        guard isSupported(vote) else {
            finalizeAtMs = nil
            return nil
        }
        if votes.keys.filter(members.contains).count == members.count { return vote }
        if let at = finalizeAtMs {
            return nowMs >= at ? vote : nil
        }
        finalizeAtMs = nowMs + finalizeWaitMs
        return finalizeWaitMs == 0 ? vote : nil
    }

    mutating func tick(nowMs: Int64) -> Step {
        var step = Step()
        if let at = finalizeAtMs, nowMs >= at {
            step.decision = check(nowMs: nowMs)
            if step.decision != nil { return step }
        }
        if nowMs >= resendAtMs {
            step.broadcast = notification
            resendIntervalMs = min(resendIntervalMs * 2, resendMaxMs)
            resendAtMs = nowMs + resendIntervalMs
        }
        return step
    }

    /// When the election next needs a tick.
    var wakeAtMs: Int64 { min(finalizeAtMs ?? .max, resendAtMs) }
}
