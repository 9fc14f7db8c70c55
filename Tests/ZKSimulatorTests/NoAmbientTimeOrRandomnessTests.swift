import Foundation
import XCTest

/// Nothing in the simulated system may read the real clock, draw from a global random source,
/// start a thread or sleep: one such call and a seed no longer replays its run. This test reads
/// the sources of ZKProtocol, ZKCore, ZKSimulator and the client's and recipes' cores (all of
/// which run inside a simulation; the
/// simulator's shell that reads the wall clock, `minizk sim`, lives in Sources/minizk) and
/// fails on any use outside comments.
final class NoAmbientTimeOrRandomnessTests: XCTestCase {
    static let forbidden: [(pattern: String, what: String)] = [
        (#"\bDate\(\)"#, "Date()"),
        (#"\.now\b"#, ".now"),
        (#"\bContinuousClock\b"#, "ContinuousClock"),
        (#"\bSuspendingClock\b"#, "SuspendingClock"),
        (#"\bSystemRandomNumberGenerator\b"#, "SystemRandomNumberGenerator"),
        (#"\.random\("#, ".random("),
        (#"\bDispatchQueue\b"#, "DispatchQueue"),
        (#"\bTask\.sleep\b"#, "Task.sleep"),
        (#"\bimport\s+NIOPosix\b"#, "import NIOPosix"),
        (#"\bThread\."#, "Thread."),
    ]

    /// ZKClientCore (and ZKRecipesCore once it lands) hold the client's and the recipes'
    /// decisions, which the simulator drives too.
    static let directories = ["Sources/ZKProtocol", "Sources/ZKCore", "Sources/ZKSimulator", "Sources/ZKClientCore", "Sources/ZKRecipesCore"]

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The source with comments blanked out (string literals kept, so `"//"` in a string is not
    /// taken for a comment).
    static func withoutComments(_ source: String) -> String {
        var result = ""
        var index = source.startIndex
        var inString = false
        var blockDepth = 0
        func peek(_ offset: Int) -> Character? {
            guard let at = source.index(index, offsetBy: offset, limitedBy: source.endIndex), at < source.endIndex else { return nil }
            return source[at]
        }
        while index < source.endIndex {
            let character = source[index]
            if blockDepth > 0 {
                if character == "*" && peek(1) == "/" {
                    blockDepth -= 1
                    index = source.index(index, offsetBy: 2)
                    continue
                }
                if character == "/" && peek(1) == "*" {
                    blockDepth += 1
                    index = source.index(index, offsetBy: 2)
                    continue
                }
                result.append(character == "\n" ? "\n" : " ")
            } else if inString {
                result.append(character)
                if character == "\\", let next = peek(1) {
                    result.append(next)
                    index = source.index(after: index)
                } else if character == "\"" || character == "\n" {
                    inString = false
                }
            } else if character == "/" && peek(1) == "/" {
                while index < source.endIndex && source[index] != "\n" { index = source.index(after: index) }
                continue
            } else if character == "/" && peek(1) == "*" {
                blockDepth = 1
                index = source.index(index, offsetBy: 2)
                continue
            } else {
                if character == "\"" { inString = true }
                result.append(character)
            }
            index = source.index(after: index)
        }
        return result
    }

    func testTheSimulatedSystemReadsNoClockAndDrawsNoAmbientRandomness() throws {
        var files = 0
        var hits: [String] = []
        for directory in Self.directories {
            let url = Self.packageRoot.appendingPathComponent(directory)
            let enumerator = FileManager.default.enumerator(atPath: url.path)
            while let relative = enumerator?.nextObject() as? String {
                guard relative.hasSuffix(".swift") else { continue }
                files += 1
                let source = try String(contentsOf: url.appendingPathComponent(relative), encoding: .utf8)
                let code = Self.withoutComments(source)
                for (number, line) in code.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    for (pattern, what) in Self.forbidden where line.range(of: pattern, options: .regularExpression) != nil {
                        hits.append("\(directory)/\(relative):\(number + 1): \(what): \(line.trimmingCharacters(in: .whitespaces))")
                    }
                }
            }
        }
        XCTAssertGreaterThan(files, 20, "found too few sources under \(Self.packageRoot.path)")
        XCTAssertTrue(hits.isEmpty, "ambient time, randomness or threads in the simulated system:\n" + hits.joined(separator: "\n"))
    }

    func testCommentsAreIgnoredButCodeIsNot() {
        let source = """
            // Date() in a comment
            /* ContinuousClock.now in a block */
            let url = "http://example" // .random( after a string
            let t = Date()
            """
        let code = Self.withoutComments(source)
        XCTAssertFalse(code.contains("ContinuousClock"))
        XCTAssertFalse(code.contains(".random("))
        XCTAssertTrue(code.contains("\"http://example\""))
        XCTAssertTrue(code.contains("let t = Date()"))
    }
}
