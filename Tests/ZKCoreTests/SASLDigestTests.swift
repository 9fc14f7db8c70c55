import Crypto
import XCTest
import ZKProtocol

@testable import ZKCore

/// SASL DIGEST-MD5 on the server side, checked against digests a client computes (the golden
/// values were computed the way pure-sasl, kazoo's SASL library, computes them).
final class SASLDigestTests: XCTestCase {
    let server = SASLDigestServer(users: ["jaasuser": "jaas_password", "super": "super_secret"])

    /// What a DIGEST-MD5 client answers to a challenge with `nonce` (RFC 2831, qop=auth).
    static func clientResponse(user: String, password: String, nonce: String, cnonce: String = "clientnonce456") -> (token: [UInt8], rspauth: String) {
        func md5(_ bytes: [UInt8]) -> [UInt8] { Array(Insecure.MD5.hash(data: bytes)) }
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        let realm = "zk-sasl-md5", uri = "zookeeper/zk-sasl-md5", nc = "00000001"
        let a1 = hex(md5(md5(Array("\(user):\(realm):\(password)".utf8)) + Array(":\(nonce):\(cnonce)".utf8)))
        func digest(_ a2: String) -> String { hex(md5(Array("\(a1):\(nonce):\(nc):\(cnonce):auth:\(hex(md5(Array(a2.utf8))))".utf8))) }
        let token = "qop=auth,realm=\"\(realm)\",username=\"\(user)\",nonce=\"\(nonce)\",cnonce=\"\(cnonce)\",nc=\(nc),digest-uri=\"\(uri)\",response=\(digest("AUTHENTICATE:" + uri))"
        return (Array(token.utf8), "rspauth=" + digest(":" + uri))
    }

    func testAGoodResponseIsAcceptedWithTheServersProof() {
        let token = Array(
            ("qop=auth,realm=\"zk-sasl-md5\",username=\"jaasuser\",nonce=\"testnonce123\",cnonce=\"clientnonce456\","
                + "nc=00000001,digest-uri=\"zookeeper/zk-sasl-md5\",response=d88e62fd08709a033904176a95d5f0d8").utf8)
        guard case .success(let (user, final)) = server.verify(response: token, nonce: "testnonce123") else {
            return XCTFail("rejected")
        }
        XCTAssertEqual(user, "jaasuser")
        XCTAssertEqual(String(decoding: final, as: UTF8.self), "rspauth=78630e092af65d26efdb71f028790ec9")
        XCTAssertEqual(Self.clientResponse(user: "jaasuser", password: "jaas_password", nonce: "testnonce123").rspauth,
                       "rspauth=78630e092af65d26efdb71f028790ec9")
    }

    func testWrongPasswordUnknownUserAndStaleNonceAreRejected() {
        let wrong = Self.clientResponse(user: "jaasuser", password: "nope", nonce: "n1").token
        XCTAssertEqual(failure(server.verify(response: wrong, nonce: "n1")), .wrongDigest)
        let unknown = Self.clientResponse(user: "mallory", password: "x", nonce: "n1").token
        XCTAssertEqual(failure(server.verify(response: unknown, nonce: "n1")), .unknownUser("mallory"))
        let good = Self.clientResponse(user: "jaasuser", password: "jaas_password", nonce: "n1").token
        XCTAssertEqual(failure(server.verify(response: good, nonce: "n2")), .malformed("nonce does not match"))
        for garbage in ["", "username", "username=\"a", "a=1,a=2", "\u{1}\u{2}"] {
            if case .success = server.verify(response: Array(garbage.utf8), nonce: "n1") { XCTFail("accepted \(garbage)") }
        }
    }

    func testQuotedValuesWithEscapesParse() {
        let fields = SASLDigestServer.parse(Array(#"a="x\"y", b = plain ,c="with,comma""#.utf8))
        XCTAssertEqual(fields, ["a": "x\"y", "b": "plain", "c": "with,comma"])
    }

    /// The exchange through the replica: challenge, response, proof; the connection is then
    /// `sasl:jaasuser` for ACLs, and a failed exchange closes the connection.
    func testTheReplicaAuthenticatesAConnectionThroughTheExchange() {
        var h = ReplicaHarness { $0.saslUsers = ["jaasuser": "jaas_password"] }
        let owner = h.connect()
        guard case (.ok, .sasl(let challenge?)) = h.send(owner, .sasl(token: [])) else { return XCTFail("no challenge") }
        guard let nonce = SASLDigestServer.parse(challenge)?["nonce"] else { return XCTFail("no nonce") }
        XCTAssertEqual(SASLDigestServer.parse(challenge)?["realm"], "zk-sasl-md5")
        let (token, rspauth) = Self.clientResponse(user: "jaasuser", password: "jaas_password", nonce: nonce)
        guard case (.ok, .sasl(let final?)) = h.send(owner, .sasl(token: token)) else { return XCTFail("not accepted") }
        XCTAssertEqual(String(decoding: final, as: UTF8.self), rspauth)
        let acl = [ACL(perms: .all, id: Id(scheme: "sasl", id: "jaasuser"))]
        XCTAssertEqual(h.create(owner, "/mine", "x", acl: acl).0, .ok)
        XCTAssertEqual(h.send(owner, .getData(path: "/mine", watch: false)).0, .ok)
        guard case (.ok, .whoAmI(let infos)) = h.send(owner, .whoAmI) else { return XCTFail() }
        XCTAssertTrue(infos.contains(ClientInfo(authScheme: "sasl", user: "jaasuser")), "\(infos)")
        XCTAssertEqual(h.create(owner, "/auth", "x", acl: [ACL(perms: .all, id: Id(scheme: "auth", id: ""))]).0, .ok)
        guard case (.ok, .getACL(let expanded, _)) = h.send(owner, .getACL(path: "/auth")) else { return XCTFail() }
        XCTAssertEqual(expanded, acl, "auth stands for the SASL id")

        let other = h.connect()
        XCTAssertEqual(h.send(other, .getData(path: "/mine", watch: false)).0, .noAuth)
        _ = h.send(other, .sasl(token: []))
        let bad = Self.clientResponse(user: "jaasuser", password: "guess", nonce: "whatever").token
        XCTAssertEqual(h.send(other, .sasl(token: bad)).0, .authFailed)
        XCTAssertTrue(h.closed.contains(other))

        var plain = ReplicaHarness()
        let nobody = plain.connect()
        XCTAssertEqual(plain.send(nobody, .sasl(token: [])).0, .authFailed, "no users: SASL refused")
        XCTAssertTrue(plain.closed.contains(nobody))
    }

    private func failure(_ result: Result<(user: String, token: [UInt8]), SASLDigestServer.Failure>) -> SASLDigestServer.Failure? {
        if case .failure(let failure) = result { return failure }
        return nil
    }
}
