import XCTest

final class ZKProtocolTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}
