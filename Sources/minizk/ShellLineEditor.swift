import Dispatch
import Foundation
import NIOConcurrencyHelpers
import ZKClient

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The interactive shell's line reader on a terminal: the terminal in non-canonical mode, typed
/// characters echoed, backspace, Ctrl-U (erase the line), Ctrl-C (drop the line), Ctrl-D on an empty
/// line (end), and Tab completing the znode path under the cursor from the server's children.
/// It runs on a thread of its own; the completion asks the client through `complete`.
final class ShellLineEditor: @unchecked Sendable {
    /// The prompt to draw before each line (set by the shell before it asks for the next line).
    let prompt = NIOLockedValueBox<String>("")
    /// The session used for completion (replaced on `connect`).
    let client = NIOLockedValueBox<ZooKeeperClient?>(nil)
    private var saved = termios()

    /// Reads lines until end of input, calling `yield` for each; restores the terminal at the end.
    func run(_ yield: (String) -> Void) {
        tcgetattr(STDIN_FILENO, &saved)
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        withUnsafeMutablePointer(to: &raw.c_cc) { pointer in
            pointer.withMemoryRebound(to: cc_t.self, capacity: Int(NCCS)) { cc in
                cc[Int(VMIN)] = 1
                cc[Int(VTIME)] = 0
            }
        }
        tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        defer { restore() }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(STDIN_FILENO, &byte, 1) == 1 {
            switch byte {
            case 10, 13:
                echo("\n")
                yield(String(decoding: line, as: UTF8.self))
                line = []
            case 4:  // Ctrl-D
                if line.isEmpty { echo("\n"); return }
            case 3:  // Ctrl-C
                echo("^C\n")
                line = []
                echo(prompt.withLockedValue { $0 })
            case 21:  // Ctrl-U
                echo(String(repeating: "\u{8} \u{8}", count: String(decoding: line, as: UTF8.self).count))
                line = []
            case 127, 8:  // backspace
                guard !line.isEmpty else { continue }
                line.removeLast()
                while let last = line.last, last & 0xC0 == 0x80 { line.removeLast() }  // a whole UTF-8 scalar
                echo("\u{8} \u{8}")
            case 9:  // Tab
                line = complete(line)
            case 27:  // an escape sequence (arrow keys): read and ignore it
                var next: UInt8 = 0
                if read(STDIN_FILENO, &next, 1) == 1, next == UInt8(ascii: "[") {
                    while read(STDIN_FILENO, &next, 1) == 1, !(64...126).contains(next) {}
                }
            default:
                guard byte >= 32 || byte >= 128 else { continue }
                line.append(byte)
                write(STDOUT_FILENO, &byte, 1)
            }
        }
    }

    func restore() {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved)
    }

    private func echo(_ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in _ = write(STDOUT_FILENO, raw.baseAddress, raw.count) }
    }

    /// Completes the last word when it is a path: one match is filled in, several are listed
    /// (and their common prefix filled in).
    private func complete(_ line: [UInt8]) -> [UInt8] {
        let text = String(decoding: line, as: UTF8.self)
        let word = text.split(separator: " ", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        guard word.hasPrefix("/"), let client = client.withLockedValue({ $0 }) else { return line }
        let slash = word.lastIndex(of: "/")!
        let parent = slash == word.startIndex ? "/" : String(word[..<slash])
        let prefix = String(word[word.index(after: slash)...])
        let box = NIOLockedValueBox<[String]>([])
        let done = DispatchSemaphore(value: 0)
        Task {
            let children = (try? await client.getChildren(parent)) ?? []
            box.withLockedValue { $0 = children }
            done.signal()
        }
        guard done.wait(timeout: .now() + .seconds(3)) == .success else { return line }
        let matches = box.withLockedValue { $0 }.filter { $0.hasPrefix(prefix) }.sorted()
        guard !matches.isEmpty else { return line }
        var common = matches[0]
        for match in matches.dropFirst() {
            while !match.hasPrefix(common) { common.removeLast() }
        }
        let addition = String(common.dropFirst(prefix.count))
        if matches.count > 1 && addition.isEmpty {
            echo("\n" + matches.joined(separator: "  ") + "\n" + prompt.withLockedValue { $0 } + text)
            return line
        }
        echo(addition)
        return line + Array(addition.utf8)
    }
}
