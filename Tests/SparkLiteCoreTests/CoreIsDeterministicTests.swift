import Foundation
import XCTest

/// SparkLiteCore runs inside simulations: it may not read a clock, draw from a global random
/// source, sleep, start tasks or threads, or import anything but ZKProtocol and ZKRecipesCore.
final class SparkLiteCoreIsDeterministicTests: XCTestCase {
    static let forbidden: [(pattern: String, what: String)] = [
        (#"\bDate\("#, "Date("), (#"\.now\b"#, ".now"), (#"\bContinuousClock\b"#, "ContinuousClock"),
        (#"\bSuspendingClock\b"#, "SuspendingClock"), (#"\bSystemRandomNumberGenerator\b"#, "SystemRandomNumberGenerator"),
        (#"\.random\("#, ".random("), (#"\bUUID\(\)"#, "UUID()"), (#"\bTask\s*[\.{(]"#, "Task"),
        (#"\bDispatchQueue\b"#, "DispatchQueue"), (#"\bThread\."#, "Thread."), (#"\basync\b"#, "async"),
        (#"\.hashValue\b"#, ".hashValue (seeded per process)"),
    ]

    func testNoAmbientTimeRandomnessOrTasks() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent("Sources/SparkLiteCore")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".swift") }
        XCTAssertGreaterThan(files.count, 4)
        for file in files {
            let source = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            let code = source.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
                guard let range = line.range(of: "//") else { return line }
                return line[..<range.lowerBound]
            }.joined(separator: "\n")
            for (pattern, what) in Self.forbidden {
                XCTAssertNil(code.range(of: pattern, options: .regularExpression), "\(file) uses \(what)")
            }
            for line in code.split(separator: "\n") where line.hasPrefix("import ") {
                XCTAssertTrue(["import ZKProtocol", "import ZKRecipesCore"].contains(line.trimmingCharacters(in: .whitespaces)), "\(file): \(line)")
            }
        }
    }
}
