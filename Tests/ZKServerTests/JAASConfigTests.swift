import XCTest
import ZKServer

final class JAASConfigTests: XCTestCase {
    func testTheServerSectionsUsersAreRead() throws {
        let text = """
            // the client side
            Client {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                username="bob"
                password="not a server user";
            };
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="super_secret"
                user_jaasuser = "jaas \\"quoted\\" password";
            };
            """
        XCTAssertEqual(try JAASConfig.serverUsers(in: text), ["super": "super_secret", "jaasuser": "jaas \"quoted\" password"])
    }

    func testAFileWithoutAServerSectionOrWithAnUnclosedPasswordIsRefused() {
        XCTAssertThrowsError(try JAASConfig.serverUsers(in: "Client { x required; };"))
        XCTAssertThrowsError(try JAASConfig.serverUsers(in: "Server { m required user_a=\"open; };"))
        XCTAssertThrowsError(try JAASConfig.serverUsers(in: "Server { m required user_a=plain; };"))
    }
}
