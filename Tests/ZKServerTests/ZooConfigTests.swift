import XCTest
import ZKCore
import ZKProtocol
import ZKServer

final class ZooConfigTests: XCTestCase {
    func testServerLinesRolesClientAddressesAndTheDynamicText() throws {
        let config = try ZooConfig(parsing: """
            tickTime=200
            clientPort=2190
            reconfigEnabled=true
            server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182
            server.1=127.0.0.1:2888:3888;2181
            server.4=127.0.0.1:2891:3891:observer;10.0.0.4:2184
            server.3=127.0.0.1:2890:3890
            """)
        XCTAssertEqual(config.servers.map(\.id), [1, 2, 3, 4])
        XCTAssertEqual(config.servers.map(\.clientPort), [2181, 2182, 2190, 2184], "a missing client port is clientPort")
        XCTAssertEqual(config.servers.map(\.clientHost), ["127.0.0.1", "127.0.0.1", "127.0.0.1", "10.0.0.4"])
        XCTAssertEqual(config.servers.map(\.role), [.participant, .participant, .participant, .observer])
        XCTAssertTrue(config.reconfigEnabled)
        XCTAssertEqual(config.dynamicConfigText, """
            server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181
            server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182
            server.3=127.0.0.1:2890:3890:participant;127.0.0.1:2190
            server.4=127.0.0.1:2891:3891:observer;10.0.0.4:2184
            version=0
            """)
        let replica = config.replicaConfig(for: 4)
        XCTAssertEqual(replica.initialEnsemble.voters, [1, 2, 3])
        XCTAssertEqual(replica.initialEnsemble.observers, [4])
    }

    func testABadServerLineNamesItsLine() {
        for bad in ["server.x=h:1:2", "server.1=h:1", "server.1=h:1:2:leader", "server.1=h:1:2;a:b:c"] {
            XCTAssertThrowsError(try ZooConfig(parsing: "tickTime=200\n" + bad), bad) { error in
                guard case ZooConfig.ParseError.invalidLine(let number, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(number, 2)
            }
        }
    }

    func testFourLetterWordWhitelist() throws {
        XCTAssertNil(try ZooConfig(parsing: "tickTime=200").fourLetterWordWhitelist, "absent: ZooKeeper's default")
        let config = try ZooConfig(parsing: "tickTime=200\n4lw.commands.whitelist=ruok, mntr ,wchs")
        XCTAssertEqual(config.fourLetterWordWhitelist, "ruok, mntr ,wchs")
        let whitelist = FourLetterWordWhitelist(parsing: config.fourLetterWordWhitelist!)
        XCTAssertEqual(whitelist.words, [.srvr, .ruok, .mntr, .wchs], "srvr is always in, as in ZooKeeper")
        XCTAssertFalse(whitelist.allows(.isro, readOnlyModeEnabled: false))
        XCTAssertTrue(whitelist.allows(.isro, readOnlyModeEnabled: true), "read-only mode adds isro, as in ZooKeeper")
        XCTAssertEqual(FourLetterWordWhitelist(parsing: "ruok,*").words, Set(FourLetterWord.allCases))
        XCTAssertEqual(FourLetterWordWhitelist(parsing: "").words, [.srvr])
        XCTAssertEqual(FourLetterWordWhitelist.default.words, [.srvr])
        for word in FourLetterWord.allCases where word != .srvr {
            XCTAssertFalse(FourLetterWordWhitelist.default.allows(word, readOnlyModeEnabled: false), word.rawValue)
        }
    }
}
