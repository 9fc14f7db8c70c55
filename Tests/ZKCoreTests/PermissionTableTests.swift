import XCTest
import ZKProtocol

@testable import ZKCore

/// Every opcode, and every operation inside `multi` and `multiRead`, against the permission
/// ZooKeeper 3.8.4 asks for (`PrepRequestProcessor` for writes, `FinalRequestProcessor` for reads,
/// both through `ZooKeeperServer.checkACL`), under each kind of identity: world, digest, the
/// `auth` scheme (expanded to the creator's digest), ip (an address and a network), sasl, and
/// super.
///
/// Each row is run three ways for every identity: the node's ACL grants the identity exactly the
/// permission of the row (allowed); it grants the identity every other permission (NOAUTH); it
/// grants the permission to someone else (NOAUTH). Super passes every check. Rows whose operation
/// needs no permission in ZooKeeper succeed on a node nobody but its owner may touch.
final class PermissionTableTests: XCTestCase {
    static let superPassword = "super:super-pw"
    static let alice = "alice:alice-pw"

    /// An identity under test: the ACL id that names it, and how a connection takes it.
    enum Identity: String, CaseIterable {
        case world, digest, auth, ipAddress, ipNetwork, sasl

        var grantee: Id {
            switch self {
            case .world: return .anyone
            case .digest: return Id(scheme: "digest", id: ACLs.digest(PermissionTableTests.alice))
            // Expanded by `ACLs.fixup` to the digest id of the connection setting the ACL.
            case .auth: return Id(scheme: "auth", id: "")
            case .ipAddress: return Id(scheme: "ip", id: "10.1.2.3")
            case .ipNetwork: return Id(scheme: "ip", id: "10.0.0.0/8")
            case .sasl: return Id(scheme: "sasl", id: "bob")
            }
        }
    }

    /// Where a row needs its permission: on the node it names, or on its parent.
    enum Target { case node, parent }

    struct Row {
        var name: String
        /// Any one of these bits suffices (getACL: READ or ADMIN); empty: no permission needed.
        var needs: Perms
        var target: Target
        var request: Request
    }

    static let parent = "/p"
    static let node = "/p/n"
    static let open = ACL.openUnsafe

    static func createRequest(_ flags: Int32, ttl: Int64? = nil) -> CreateRequest {
        CreateRequest(path: "/p/new", data: Array("x".utf8), acl: open, flags: flags, ttl: ttl)
    }

    /// ZooKeeper 3.8.4's table. Where the list of operations says "none", ZooKeeper checks
    /// nothing either (sync, addWatch, the watch operations, getEphemerals, whoAmI).
    static let rows: [Row] = [
        Row(name: "create", needs: .create, target: .parent, request: .create(createRequest(0))),
        Row(name: "create sequential ephemeral", needs: .create, target: .parent, request: .create(createRequest(3))),
        Row(name: "create2", needs: .create, target: .parent, request: .create2(createRequest(0))),
        Row(name: "createContainer", needs: .create, target: .parent, request: .createContainer(createRequest(4))),
        Row(name: "createTTL", needs: .create, target: .parent, request: .createTTL(createRequest(5, ttl: 60_000))),
        Row(name: "delete", needs: .delete, target: .parent, request: .delete(path: node, version: -1)),
        Row(name: "setData", needs: .write, target: .node, request: .setData(path: node, data: [1], version: -1)),
        Row(name: "setACL", needs: .admin, target: .node, request: .setACL(path: node, acl: open, version: -1)),
        Row(name: "check", needs: .read, target: .node, request: .check(path: node, version: -1)),
        Row(name: "exists", needs: .read, target: .node, request: .exists(path: node, watch: false)),
        Row(name: "exists with a watch", needs: .read, target: .node, request: .exists(path: node, watch: true)),
        Row(name: "getData", needs: .read, target: .node, request: .getData(path: node, watch: true)),
        Row(name: "getChildren", needs: .read, target: .node, request: .getChildren(path: node, watch: true)),
        Row(name: "getChildren2", needs: .read, target: .node, request: .getChildren2(path: node, watch: false)),
        Row(name: "getAllChildrenNumber", needs: .read, target: .node, request: .getAllChildrenNumber(path: node)),
        Row(name: "getACL", needs: [.read, .admin], target: .node, request: .getACL(path: node)),
        Row(name: "multi create", needs: .create, target: .parent, request: .multi([.create(createRequest(0))])),
        Row(name: "multi create2", needs: .create, target: .parent, request: .multi([.create2(createRequest(0))])),
        Row(name: "multi createContainer", needs: .create, target: .parent, request: .multi([.createContainer(createRequest(4))])),
        Row(name: "multi createTTL", needs: .create, target: .parent, request: .multi([.createTTL(createRequest(5, ttl: 60_000))])),
        Row(name: "multi delete", needs: .delete, target: .parent, request: .multi([.delete(path: node, version: -1)])),
        Row(name: "multi setData", needs: .write, target: .node, request: .multi([.setData(path: node, data: [1], version: -1)])),
        Row(name: "multi check", needs: .read, target: .node, request: .multi([.check(path: node, version: -1)])),
        Row(name: "multiRead getData", needs: .read, target: .node, request: .multiRead([.getData(path: node, watch: false)])),
        Row(name: "multiRead getChildren", needs: .read, target: .node, request: .multiRead([.getChildren(path: node, watch: false)])),
        Row(name: "sync", needs: [], target: .node, request: .sync(path: node)),
        Row(name: "addWatch persistent", needs: [], target: .node, request: .addWatch(path: node, mode: 0)),
        Row(name: "addWatch persistent recursive", needs: [], target: .node, request: .addWatch(path: node, mode: 1)),
        Row(name: "setWatches", needs: [], target: .node, request: .setWatches(SetWatchesRequest(relativeZxid: 0, dataWatches: [node]))),
        Row(name: "setWatches2", needs: [], target: .node, request: .setWatches2(SetWatchesRequest(relativeZxid: 0, persistentWatches: [node]))),
        Row(name: "getEphemerals", needs: [], target: .node, request: .getEphemerals(prefixPath: "/")),
        Row(name: "whoAmI", needs: [], target: .node, request: .whoAmI),
    ]

    // MARK: - The fixture

    struct Fixture {
        var h: ReplicaHarness
        let admin: ConnectionID

        init() {
            h = ReplicaHarness { config in
                config.superDigest = ACLs.digest(PermissionTableTests.superPassword)
                config.saslUsers = ["bob": "bob-pw"]
                config.extendedTypesEnabled = true
            }
            admin = h.connect()
            precondition(h.send(admin, .auth(type: 0, scheme: "digest", auth: Array(PermissionTableTests.superPassword.utf8))).0 == .ok)
            precondition(h.create(admin, PermissionTableTests.parent).0 == .ok)
            precondition(h.create(admin, PermissionTableTests.node).0 == .ok)
        }

        /// A new session on a connection from `address`.
        mutating func connect(from address: String = "127.0.0.1") -> ConnectionID {
            let id = h.nextConnection
            h.nextConnection += 1
            h.step(.connectionOpened(id, peerAddress: address, peerPort: 40000 + Int(id)))
            h.step(.connect(id, ConnectRequest(timeoutMs: 4000)))
            return id
        }

        mutating func digest(_ idPassword: String, from address: String = "127.0.0.1") -> ConnectionID {
            let id = connect(from: address)
            precondition(h.send(id, .auth(type: 0, scheme: "digest", auth: Array(idPassword.utf8))).0 == .ok)
            return id
        }

        /// A connection through the whole SASL DIGEST-MD5 exchange.
        mutating func sasl(user: String, password: String) -> ConnectionID {
            let id = connect()
            guard case (.ok, .sasl(let challenge?)) = h.send(id, .sasl(token: [])),
                let nonce = SASLDigestServer.parse(challenge)?["nonce"]
            else { preconditionFailure("no SASL challenge") }
            let token = SASLDigestTests.clientResponse(user: user, password: password, nonce: nonce).token
            guard case (.ok, .sasl) = h.send(id, .sasl(token: token)) else { preconditionFailure("SASL refused") }
            return id
        }

        /// A connection that holds `identity`.
        mutating func holder(of identity: Identity) -> ConnectionID {
            switch identity {
            case .world: return connect()
            case .digest, .auth: return digest(PermissionTableTests.alice)
            case .ipAddress, .ipNetwork: return connect(from: "10.1.2.3")
            case .sasl: return sasl(user: "bob", password: "bob-pw")
            }
        }

        /// A connection that does not hold `identity` (nil for world, which everyone holds).
        mutating func stranger(to identity: Identity) -> ConnectionID? {
            switch identity {
            case .world: return nil
            // Same user, another password: another digest.
            case .digest, .auth: return digest("alice:not-her-password")
            case .ipAddress: return connect(from: "10.1.2.4")
            case .ipNetwork: return connect(from: "192.168.1.2")
            // Authenticated, but by digest as "bob": the scheme must match too.
            case .sasl: return digest("bob:bob-pw")
            }
        }

        /// Sets the ACL of `path` to `perms` for `identity`. The `auth` scheme is expanded from the
        /// connection that sets it, so its holder sets it (on a node still open to everyone).
        mutating func protect(_ path: String, _ perms: Perms, for identity: Identity) {
            let acl = [ACL(perms: perms, id: identity.grantee)]
            let setter = identity == .auth ? holder(of: .auth) : admin
            let (err, _) = h.send(setter, .setACL(path: path, acl: acl, version: -1))
            precondition(err == .ok, "setACL \(path) \(acl): \(err)")
        }
    }

    /// The error of a request, looking inside a multi's results: the first failed operation's.
    static func outcome(_ reply: (ErrorCode, Response)) -> ErrorCode {
        guard reply.0 == .ok else { return reply.0 }
        if case .multi(let results) = reply.1 {
            for result in results { if case .error(let code) = result, code != .ok { return code } }
        }
        return .ok
    }

    /// Runs `row` for `identity` on a fresh replica, the target's ACL set to `perms`.
    func run(_ row: Row, as identity: Identity, perms: Perms, who: (inout Fixture) -> ConnectionID?) -> ErrorCode? {
        var f = Fixture()
        let path = row.target == .node ? Self.node : Self.parent
        f.protect(path, perms, for: identity)
        guard let client = who(&f) else { return nil }
        return Self.outcome(f.h.send(client, row.request))
    }

    // MARK: - The table

    func testEveryOperationAgainstThePermissionZooKeeperRequires() {
        var checked = 0
        for row in Self.rows {
            for identity in Identity.allCases {
                let label = "\(row.name) as \(identity.rawValue)"
                if row.needs.isEmpty {
                    // Nobody but `identity` may do anything on the target, and not even it.
                    let result = run(row, as: identity, perms: [], who: { $0.holder(of: .world) })
                    XCTAssertEqual(result, .ok, "\(label): ZooKeeper checks no permission")
                    checked += 1
                    continue
                }
                // Allowed with exactly the permission (each bit alone, when any bit suffices).
                for bit in [Perms.read, .write, .create, .delete, .admin] where row.needs.contains(bit) {
                    let allowed = run(row, as: identity, perms: bit, who: { $0.holder(of: identity) })
                    XCTAssertEqual(allowed, .ok, "\(label) with \(bit.rawValue)")
                    checked += 1
                }
                // Every other permission does not do.
                let others = Perms.all.subtracting(row.needs)
                let denied = run(row, as: identity, perms: others, who: { $0.holder(of: identity) })
                XCTAssertEqual(denied, .noAuth, "\(label) with every permission but \(row.needs.rawValue)")
                checked += 1
                // The permission given to someone else does not do.
                if let stranger = run(row, as: identity, perms: row.needs, who: { $0.stranger(to: identity) }) {
                    XCTAssertEqual(stranger, .noAuth, "\(label): a connection without the identity")
                    checked += 1
                }
                // Super passes every check, whatever the ACL says.
                let superUser = run(row, as: identity, perms: others, who: { $0.admin })
                XCTAssertEqual(superUser, .ok, "\(label): super")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 600)
    }

    // MARK: - Rules beside the table

    /// ZOOKEEPER-2590 (3.8): exists checks READ on a node that exists, before it sets the watch: a
    /// connection refused learns nothing and leaves no watch. On a missing node exists sets the
    /// watch and answers NONODE, as before.
    func testExistsWithoutReadSetsNoWatch() {
        var f = Fixture()
        f.protect(Self.node, Perms.all.subtracting(.read), for: .world)
        let client = f.connect()
        XCTAssertEqual(f.h.send(client, .exists(path: Self.node, watch: true)).0, .noAuth)
        XCTAssertEqual(f.h.send(client, .exists(path: "/p/missing", watch: true)).0, .noNode)
        XCTAssertEqual(f.h.send(f.admin, .setData(path: Self.node, data: [7], version: -1)).0, .ok)
        XCTAssertEqual(f.h.create(f.admin, "/p/missing").0, .ok)
        XCTAssertEqual(f.h.events(client).map(\.path), ["/p/missing"], "only the watch on the missing node")
    }

    /// getACL with READ but not ADMIN shows digest ids with their hash hidden (`user:x`).
    func testGetACLWithoutAdminHidesDigests() {
        var f = Fixture()
        let hash = ACLs.digest(Self.alice)
        let acl = [ACL(perms: .read, id: .anyone), ACL(perms: .all, id: Id(scheme: "digest", id: hash))]
        XCTAssertEqual(f.h.send(f.admin, .setACL(path: Self.node, acl: acl, version: -1)).0, .ok)
        let reader = f.connect()
        guard case (.ok, .getACL(let masked, _)) = f.h.send(reader, .getACL(path: Self.node)) else { return XCTFail() }
        XCTAssertEqual(masked[1].id, Id(scheme: "digest", id: "alice:x"))
        let owner = f.digest(Self.alice)
        guard case (.ok, .getACL(let shown, _)) = f.h.send(owner, .getACL(path: Self.node)) else { return XCTFail() }
        XCTAssertEqual(shown, acl)
    }

    /// The `auth` scheme stands for the connection's digest and sasl ids; a connection with none
    /// cannot use it (INVALIDACL), ip does not count.
    func testAuthSchemeNeedsAnAuthenticatedConnection() {
        var f = Fixture()
        let anonymous = f.connect(from: "10.1.2.3")
        let create = Request.create(CreateRequest(path: "/p/a", data: [], acl: ACL.creatorAll, flags: 0))
        XCTAssertEqual(f.h.send(anonymous, create).0, .invalidACL)
        let alice = f.digest(Self.alice)
        XCTAssertEqual(f.h.send(alice, create).0, .ok)
        guard case (.ok, .getACL(let acl, _)) = f.h.send(alice, .getACL(path: "/p/a")) else { return XCTFail() }
        XCTAssertEqual(acl, [ACL(perms: .all, id: Id(scheme: "digest", id: ACLs.digest(Self.alice)))])
    }

    /// `/zookeeper/config` is world-readable and nobody but super may write it; reconfig answers
    /// RECONFIGDISABLED while `reconfigEnabled` is off, to super too (ZooKeeper checks that
    /// first). With it on, reconfig needs WRITE on `/zookeeper/config`: `ReconfigTests` runs that
    /// on an ensemble (a plain client NOAUTH, super allowed).
    func testConfigNodeAndReconfig() {
        var f = Fixture()
        let client = f.connect()
        XCTAssertEqual(f.h.send(client, .getData(path: Paths.config, watch: false)).0, .ok)
        XCTAssertEqual(f.h.send(client, .setData(path: Paths.config, data: [1], version: -1)).0, .noAuth)
        XCTAssertEqual(f.h.send(client, .setACL(path: Paths.config, acl: Self.open, version: -1)).0, .noAuth)
        XCTAssertEqual(f.h.send(client, .create(CreateRequest(path: Paths.config + "/x", data: [], acl: Self.open, flags: 0))).0, .noAuth)
        let reconfig = Request.reconfig(ReconfigRequest(joiningServers: nil, leavingServers: "1", newMembers: nil, currentConfigId: -1))
        XCTAssertEqual(f.h.send(client, reconfig).0, .reconfigDisabled)
        XCTAssertEqual(f.h.send(f.admin, reconfig).0, .reconfigDisabled)
    }

    /// deleteContainer is the container reaper's own operation; a client that sends it deletes
    /// nothing (ZooKeeper reads its body as a raw path that never validates; MiniZK does not
    /// serve it), whatever its permissions.
    func testDeleteContainerFromAClientDeletesNothing() {
        var f = Fixture()
        XCTAssertEqual(f.h.send(f.admin, .createContainer(CreateRequest(path: "/p/c", data: [], acl: Self.open, flags: 4))).0, .ok)
        XCTAssertNotEqual(f.h.send(f.admin, .deleteContainer(path: "/p/c")).0, .ok)
        XCTAssertNotNil(f.h.stat(f.admin, "/p/c"))
    }

    /// An unsupported auth scheme is AUTHFAILED and closes the connection; a wrong digest password
    /// is accepted as another identity (ZooKeeper does the same: digest auth never fails).
    func testAuthSchemes() {
        var f = Fixture()
        let unknown = f.connect()
        XCTAssertEqual(f.h.send(unknown, .auth(type: 0, scheme: "kerberos", auth: Array("x".utf8))).0, .authFailed)
        XCTAssertTrue(f.h.closed.contains(unknown))
        let wrong = f.digest("super:guess")
        guard case (.ok, .whoAmI(let infos)) = f.h.send(wrong, .whoAmI) else { return XCTFail() }
        XCTAssertFalse(infos.contains { $0.authScheme == "super" }, "\(infos)")
        guard case (.ok, .whoAmI(let superInfos)) = f.h.send(f.admin, .whoAmI) else { return XCTFail() }
        XCTAssertTrue(superInfos.contains { $0.authScheme == "super" }, "\(superInfos)")
    }

    /// Only a client that proves a session's password takes the session over; one that knows the
    /// id alone is told the session expired, and the session's connection stays (before the fix
    /// MiniZK closed the session's connection first, then refused the stranger: anyone who saw a
    /// session id could disconnect it at will).
    func testAWrongSessionPasswordLeavesTheSessionsConnectionAlone() {
        var f = Fixture()
        let owner = f.connect()
        guard case .connect(let session)? = f.h.frames[owner]?.first(where: { if case .connect = $0 { return true } else { return false } })
        else { return XCTFail("no session") }
        func resume(_ password: [UInt8]) -> ConnectionID {
            let id = f.h.nextConnection
            f.h.nextConnection += 1
            f.h.step(.connectionOpened(id, peerAddress: "10.9.9.9", peerPort: 40000 + Int(id)))
            f.h.step(.connect(id, ConnectRequest(timeoutMs: 4000, sessionId: session.sessionId, password: password)))
            return id
        }
        var wrong = session.password
        wrong[0] ^= 0xFF
        let stranger = resume(wrong)
        XCTAssertTrue(f.h.closed.contains(stranger), "a wrong password was not refused")
        XCTAssertFalse(f.h.closed.contains(owner), "a wrong password disconnected the session's connection")
        XCTAssertEqual(f.h.send(owner, .exists(path: "/", watch: false)).0, .ok)
        let taker = resume(session.password)
        XCTAssertFalse(f.h.closed.contains(taker))
        XCTAssertTrue(f.h.closed.contains(owner), "the right password moves the session")
        XCTAssertEqual(f.h.send(taker, .exists(path: "/", watch: false)).0, .ok)
    }
}
