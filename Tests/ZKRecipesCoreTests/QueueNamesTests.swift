import XCTest
import ZKRecipesCore

final class QueueNamesTests: XCTestCase {
    func testIdItemNamesAreCuratorsAndSortByTheirPutOrder() {
        XCTAssertEqual(QueueItemNames.idItemPrefix("job/7|b"), "queue-|job_7_b|")
        XCTAssertEqual(QueueItemNames.parseId("queue-|job-1|0000000003").id, "job-1")
        XCTAssertEqual(QueueItemNames.parseId("queue-|job-1|0000000003").cleaned, "queue-0000000003")
        XCTAssertEqual(QueueItemNames.parseId("queue-0000000009").id, "queue-0000000009", "a name without an id is its own id, as in Curator")
        XCTAssertEqual(QueueItemNames.orderedById(["queue-|b|0000000002", "queue-|a|0000000003", "queue-|z|0000000001", "lock"]),
                       ["queue-|z|0000000001", "queue-|b|0000000002", "queue-|a|0000000003"])
    }

    func testDelayItemNamesCarryTheEpochInHex() {
        // String.format("%08X", epoch): at least eight upper-case digits.
        XCTAssertEqual(QueueItemNames.delayItemPrefix(untilEpochMs: 1000), "queue-|000003E8|")
        XCTAssertEqual(QueueItemNames.delayItemPrefix(untilEpochMs: 1_765_000_000_000), "queue-|19AF232B200|")
        XCTAssertEqual(QueueItemNames.epoch(of: "queue-|19AF232B200|0000000012"), 1_765_000_000_000)
        XCTAssertEqual(QueueItemNames.epoch(of: "queue-0000000012"), 0)
        XCTAssertEqual(QueueItemNames.epoch(of: "queue-|zz|0000000012"), 0)
        XCTAssertEqual(QueueItemNames.orderedByDelay(["queue-|000007D0|0000000000", "queue-|000003E8|0000000002", "queue-|000003E8|0000000001"]),
                       ["queue-|000003E8|0000000001", "queue-|000003E8|0000000002", "queue-|000007D0|0000000000"])
    }
}
