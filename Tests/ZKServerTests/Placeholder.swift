import XCTest

final class ZKServerTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}
