import NIOCore
import NIOPosix
import XCTest
import ZKTesting
import ZKClient
import ZKClientCore
import ZKCore
import ZKProtocol

/// SASL DIGEST-MD5 in the session core, byte for byte: no sockets, no clock.
extension ClientSessionTests {
    /// RFC 2831's own example (section 4): user chris, password secret, digest-uri
    /// imap/elwood.innosoft.com; the response and rspauth digests are the RFC's.
    func testSASLDigestResponseMatchesRFC2831Example() throws {
        let credentials = SASLCredentials(user: "chris", password: "secret", service: "imap", host: "elwood.innosoft.com")
        var client = SASLDigestClient(credentials: credentials, cnonce: "OA6MHXh6VqTrRk")
        let challenge = #"realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8"#
        let response = try client.response(to: Array(challenge.utf8)).get()
        XCTAssertEqual(
            String(decoding: response, as: UTF8.self),
            #"charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",nc=00000001,"#
                + #"cnonce="OA6MHXh6VqTrRk",digest-uri="imap/elwood.innosoft.com",maxbuf=65536,"#
                + #"response=d388dad90d4bbd760a152321f2143af7,qop=auth"#)
        XCTAssertTrue(client.verifyFinal(Array("rspauth=ea40f60335c427b5527b84dbabcdfffd".utf8)))
        XCTAssertFalse(client.verifyFinal(Array("rspauth=00000000000000000000000000000000".utf8)))
    }

    /// The client's answer checks out with MiniZK's server side, and the server's proof with the client.
    func testSASLDigestClientAgainstTheServerSide() throws {
        let server = SASLDigestServer(users: ["jaasuser": "jaas_password"])
        var generator = FixedGenerator(state: 3)
        var client = SASLDigestClient(
            credentials: SASLCredentials(user: "jaasuser", password: "jaas_password"),
            cnonce: SASLDigestClient.makeCnonce(using: &generator))
        XCTAssertEqual(client.cnonce.count, 32)
        let response = try client.response(to: SASLDigestServer.challenge(nonce: "n0nce+/=")).get()
        let (user, final) = try server.verify(response: response, nonce: "n0nce+/=").get()
        XCTAssertEqual(user, "jaasuser")
        XCTAssertTrue(client.verifyFinal(final))

        var wrong = SASLDigestClient(credentials: SASLCredentials(user: "jaasuser", password: "nope"), cnonce: "c")
        let bad = try wrong.response(to: SASLDigestServer.challenge(nonce: "n")).get()
        guard case .failure(.wrongDigest) = server.verify(response: bad, nonce: "n") else { return XCTFail("a wrong password passed") }
        var other = SASLDigestClient(credentials: SASLCredentials(user: "u", password: "p"), cnonce: "c")
        XCTAssertEqual(other.response(to: Array(#"nonce="x",qop="auth-conf""#.utf8)), .failure(.unsupported("qop [\"auth-conf\"]")))
        XCTAssertEqual(other.response(to: Array("qop=auth".utf8)), .failure(.malformedChallenge("no nonce")))
    }

    /// Drives one SASL exchange on `attempt` as the server would answer it; returns the step of
    /// the server's proof.
    func saslExchange(
        _ session: inout ClientSession, attempt: UInt64, firstXid: Int32, server: SASLDigestServer, nowMs: Int64, handshakeStep: ClientStep
    ) throws -> ClientStep {
        let first = try sent(handshakeStep).map(serverView)
        XCTAssertEqual(first.map { $0.0?.xid }, [firstXid], "the empty SASL token goes alone")
        XCTAssertEqual(first.first?.0?.type, OpCode.sasl.rawValue)
        XCTAssertEqual(first.first?.1, .sasl(token: []))
        let challenged = session.received(
            payload: payload(.reply(ReplyHeader(xid: firstXid, zxid: 0, err: 0), .sasl(token: SASLDigestServer.challenge(nonce: "abc")))),
            attempt: attempt, nowMs: nowMs)
        XCTAssertTrue(states(challenged).isEmpty)
        let second = try sent(challenged).map(serverView)
        XCTAssertEqual(second.map { $0.0?.xid }, [firstXid + 1])
        guard case .sasl(let token?)? = second.first?.1 else { XCTFail("no digest response in \(challenged)"); return challenged }
        switch server.verify(response: token, nonce: "abc") {
        case .success(let (_, final)):
            return session.received(
                payload: payload(.reply(ReplyHeader(xid: firstXid + 1, zxid: 0, err: 0), .sasl(token: final))), attempt: attempt, nowMs: nowMs)
        case .failure:
            return session.received(
                payload: payload(.reply(ReplyHeader(xid: firstXid + 1, zxid: 0, err: ErrorCode.authFailed.rawValue), .empty)),
                attempt: attempt, nowMs: nowMs)
        }
    }

    func testSASLRunsAfterTheHandshakeBeforeQueuedCallsAndAgainAfterAReconnect() throws {
        let server = SASLDigestServer(users: ["jaasuser": "jaas_password"])
        var session = makeSession { $0.sasl = SASLCredentials(user: "jaasuser", password: "jaas_password") }
        let start = session.start(nowMs: 0)
        let (_, attempt) = connectAction(start)!
        _ = session.submit(ClientCall(.sync(path: "/")), token: 1, nowMs: 1)
        _ = session.connectionEstablished(attempt: attempt, nowMs: 2)
        let response = ConnectResponse(timeoutMs: 3000, sessionId: 5, password: Array(repeating: 1, count: 16), readOnly: false)
        let handshake = session.received(payload: payload(.connect(response)), attempt: attempt, nowMs: 3)
        XCTAssertTrue(states(handshake).isEmpty, "not connected before SASL succeeds")
        XCTAssertTrue(session.isAuthenticatingSASL)
        // A call made during the exchange waits too.
        XCTAssertTrue(sent(session.submit(ClientCall(.exists(path: "/a", watch: false)), token: 2, nowMs: 4)).isEmpty)
        let done = try saslExchange(&session, attempt: attempt, firstXid: 1, server: server, nowMs: 5, handshakeStep: handshake)
        XCTAssertEqual(states(done), [.connected])
        XCTAssertFalse(session.isAuthenticatingSASL)
        let frames = try sent(done).map(serverView)
        XCTAssertEqual(frames.map { $0.0?.xid }, [3, 4])
        XCTAssertEqual(frames.map { $0.1 }, [.sync(path: "/"), .exists(path: "/a", watch: false)])
        _ = session.received(payload: payload(.reply(ReplyHeader(xid: 3, zxid: 7, err: 0), .sync(path: "/"))), attempt: attempt, nowMs: 6)
        _ = session.received(payload: payload(.reply(ReplyHeader(xid: 4, zxid: 7, err: 0), .stat(Stat()))), attempt: attempt, nowMs: 6)

        // A new connection authenticates again before the program hears `reconnected`.
        let lost = session.connectionLost(attempt: attempt, nowMs: 10)
        XCTAssertEqual(states(lost), [.suspended])
        let (_, next) = connectAction(lost)!
        _ = session.connectionEstablished(attempt: next, nowMs: 11)
        let resumed = session.received(payload: payload(.connect(response)), attempt: next, nowMs: 12)
        XCTAssertTrue(states(resumed).isEmpty)
        let again = try saslExchange(&session, attempt: next, firstXid: 5, server: server, nowMs: 13, handshakeStep: resumed)
        XCTAssertEqual(states(again), [.reconnected])
    }

    func testSASLRefusalEndsTheSessionAuthFailed() throws {
        let server = SASLDigestServer(users: ["jaasuser": "jaas_password"])
        var session = makeSession { $0.sasl = SASLCredentials(user: "jaasuser", password: "wrong") }
        let start = session.start(nowMs: 0)
        let (_, attempt) = connectAction(start)!
        _ = session.submit(ClientCall(.sync(path: "/")), token: 1, nowMs: 1)
        _ = session.connectionEstablished(attempt: attempt, nowMs: 2)
        let response = ConnectResponse(timeoutMs: 3000, sessionId: 5, password: Array(repeating: 1, count: 16), readOnly: false)
        let handshake = session.received(payload: payload(.connect(response)), attempt: attempt, nowMs: 3)
        let refused = try saslExchange(&session, attempt: attempt, firstXid: 1, server: server, nowMs: 4, handshakeStep: handshake)
        XCTAssertEqual(kinds(refused), ["close", "state:authFailed", "complete:1"])
        XCTAssertEqual(refused.actions.last, .complete(1, .failure(.authFailed)))
        XCTAssertEqual(session.connectionState, .authFailed)
        XCTAssertEqual(completions(session.submit(ClientCall(.sync(path: "/")), token: 2, nowMs: 5)).first?.1, .failure(.authFailed))
    }

    func testSASLServerProofThatDoesNotCheckEndsTheSession() throws {
        var session = makeSession { $0.sasl = SASLCredentials(user: "jaasuser", password: "jaas_password") }
        let start = session.start(nowMs: 0)
        let (_, attempt) = connectAction(start)!
        _ = session.connectionEstablished(attempt: attempt, nowMs: 1)
        let response = ConnectResponse(timeoutMs: 3000, sessionId: 5, password: Array(repeating: 1, count: 16), readOnly: false)
        _ = session.received(payload: payload(.connect(response)), attempt: attempt, nowMs: 2)
        _ = session.received(
            payload: payload(.reply(ReplyHeader(xid: 1, zxid: 0, err: 0), .sasl(token: SASLDigestServer.challenge(nonce: "abc")))),
            attempt: attempt, nowMs: 3)
        let forged = session.received(
            payload: payload(.reply(ReplyHeader(xid: 2, zxid: 0, err: 0), .sasl(token: Array("rspauth=0123456789abcdef0123456789abcdef".utf8)))),
            attempt: attempt, nowMs: 4)
        XCTAssertEqual(kinds(forged), ["close", "state:authFailed"])
    }

    func testSessionsWithoutSASLDrawNothingMoreFromTheGenerator() {
        var plain = FixedGenerator(state: 11)
        var withSASL = FixedGenerator(state: 11)
        _ = ClientSession(hosts: hosts, configuration: .init(sessionTimeoutMs: 3000), generator: &plain)
        var configuration = ClientSession.Configuration(sessionTimeoutMs: 3000)
        configuration.sasl = SASLCredentials(user: "u", password: "p")
        _ = ClientSession(hosts: hosts, configuration: configuration, generator: &withSASL)
        var reference = FixedGenerator(state: 11)
        var shuffled = hosts
        shuffled.shuffle(using: &reference)
        XCTAssertEqual(plain.state, reference.state, "a session without SASL draws only the shuffle")
        XCTAssertEqual(withSASL.state, { var g = reference; _ = g.next(); return g.state }(), "with SASL, one draw more")
    }
}

/// SASL DIGEST-MD5 through real sockets, against MiniZK (configured with `saslUsers`) or the
/// external server (`ZKCLIENT_TEST_SASL=1`: its JAAS Server section has the same users).
final class ClientSASLTests: ClientTestCase {
    func saslClient(_ user: String, _ password: String) async throws -> ZooKeeperClient {
        try await client { $0.sasl = SASLCredentials(user: user, password: password) }
    }

    override func setUp() async throws {
        try await super.setUp()
        if !serverHasSASL { throw XCTSkip("the external server has no SASL users (ZKCLIENT_TEST_SASL is not 1)") }
    }

    func testRightPasswordConnectsAsTheSASLUser() async throws {
        let zk = try await saslClient("jaasuser", "jaas_password")
        XCTAssertEqual(zk.state, .connected)
        let identities = try await zk.whoAmI()
        XCTAssertTrue(identities.contains(ClientInfo(authScheme: "sasl", user: "jaasuser")), "\(identities)")
        let plain = try await client()
        let plainIdentities = try await plain.whoAmI()
        XCTAssertFalse(plainIdentities.contains { $0.authScheme == "sasl" }, "\(plainIdentities)")
    }

    func testWrongPasswordOrUnknownUserIsAuthFailed() async throws {
        await assertThrows(.authFailed) { try await self.saslClient("jaasuser", "not_the_password") }
        await assertThrows(.authFailed) { try await self.saslClient("nobody", "no_such_password") }
        if !isExternal {
            // ZooKeeper 3.8 lets this one in: its DIGEST-MD5 callback handler is shared by every
            // connection and keeps the last known user name, so an unknown user is checked
            // against the password of the user who authenticated before. MiniZK refuses it.
            await assertThrows(.authFailed) { try await self.saslClient("nobody", "jaas_password") }
        }
    }

    func testANodeWithASASLACLIsReadableOnlyByThatUser() async throws {
        let owner = try await saslClient("jaasuser", "jaas_password")
        let path = "\(base)/secret"
        try await owner.create(path, data: Array("s".utf8), acl: [ACL(perms: .all, id: Id(scheme: "sasl", id: "jaasuser"))])
        let (data, _) = try await owner.getData(path)
        XCTAssertEqual(data, Array("s".utf8))
        let (acl, _) = try await owner.getACL(path)
        XCTAssertEqual(acl, [ACL(perms: .all, id: Id(scheme: "sasl", id: "jaasuser"))])
        let plain = try await client()
        await assertThrows(.noAuth) { try await plain.getData(path) }
        let bob = try await saslClient("bob", "bob_secret")
        await assertThrows(.noAuth) { try await bob.getData(path) }
        await assertThrows(.noAuth) { try await bob.setData(path, data: []) }
        // A digest identity is not a SASL one.
        let digest = try await client { $0.authInfo = [(scheme: "digest", auth: Array("jaasuser:jaas_password".utf8))] }
        await assertThrows(.noAuth) { try await digest.getData(path) }
    }

    /// The server drops the connection (another connection took the session over); the client
    /// reconnects and must authenticate again, since identities belong to connections.
    func testTheExchangeIsRedoneAfterAReconnect() async throws {
        let owner = try await saslClient("jaasuser", "jaas_password")
        let path = "\(base)/again"
        try await owner.create(path, data: Array("v".utf8), acl: [ACL(perms: .all, id: Id(scheme: "sasl", id: "jaasuser"))])
        let states = owner.states
        try await takeOver(sessionId: owner.sessionId, password: owner.sessionPassword)
        let reconnected = try await first(states) { $0 == .reconnected }
        XCTAssertEqual(reconnected, .reconnected)
        let (data, _) = try await owner.getData(path)
        XCTAssertEqual(data, Array("v".utf8))
        let identities = try await owner.whoAmI()
        XCTAssertTrue(identities.contains(ClientInfo(authScheme: "sasl", user: "jaasuser")), "\(identities)")
    }

    /// Takes the session over from the client's connection (see `TestClient.takeOver`).
    func takeOver(sessionId: Int64, password: [UInt8]) async throws {
        let hostPort = connectString.split(separator: ",")[0].split(separator: ":")
        try await TestClient.takeOver(
            sessionId: sessionId, password: password, host: String(hostPort[0]), port: Int(hostPort[1])!,
            group: group, timeoutMs: 4000)
    }
}
