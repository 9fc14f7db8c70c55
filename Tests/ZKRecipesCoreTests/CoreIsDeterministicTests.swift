import Foundation
import XCTest

/// ZKRecipesCore runs inside simulations: it may not read a clock, draw from a global random
/// source, sleep, start tasks or threads, or import anything but ZKProtocol. This reads its
/// sources and fails on any such use outside comments.
final class CoreIsDeterministicTests: XCTestCase {
    static let forbidden: [(pattern: String, what: String)] = [
        (#"\bDate\("#, "Date("),
        (#"\.now\b"#, ".now"),
        (#"\bContinuousClock\b"#, "ContinuousClock"),
        (#"\bSuspendingClock\b"#, "SuspendingClock"),
        (#"\bSystemRandomNumberGenerator\b"#, "SystemRandomNumberGenerator"),
        (#"\.random\("#, ".random("),
        (#"\bUUID\(\)"#, "UUID()"),
        (#"\bTask\s*[\.{(]"#, "Task"),
        (#"\bDispatchQueue\b"#, "DispatchQueue"),
        (#"\bThread\."#, "Thread."),
        (#"\basync\b"#, "async"),
    ]

    func testNoAmbientTimeRandomnessOrTasks() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent("Sources/ZKRecipesCore")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".swift") }
        XCTAssertFalse(files.isEmpty)
        for file in files {
            let source = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            // Comment lines and trailing comments removed (the core has no "//" inside strings).
            let code = source.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
                guard let range = line.range(of: "//") else { return line }
                return line[..<range.lowerBound]
            }.joined(separator: "\n")
            for (pattern, what) in Self.forbidden {
                XCTAssertNil(code.range(of: pattern, options: .regularExpression), "\(file) uses \(what)")
            }
            for line in code.split(separator: "\n") where line.hasPrefix("import ") {
                XCTAssertEqual(line.trimmingCharacters(in: .whitespaces), "import ZKProtocol", "\(file): \(line)")
            }
        }
    }
}
