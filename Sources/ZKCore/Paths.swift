import ZKProtocol

/// ZooKeeper's rules for znode paths.
///
/// A valid path starts with `/`, has no empty component, no `.` or `..` component, does not end
/// with `/` (except the root itself), and contains no NUL, no control characters (U+0001–U+001F,
/// U+007F–U+009F), no surrogates or private-use characters (U+D800–U+F8FF) and nothing in
/// U+FFF0–U+FFFF. Characters outside the Basic Multilingual Plane are refused too: ZooKeeper sees
/// them as surrogate pairs.
public enum Paths {
    public static let root = "/"
    static let slash = UInt8(ascii: "/")
    public static let zookeeper = "/zookeeper"
    public static let quota = "/zookeeper/quota"
    public static let config = "/zookeeper/config"

    /// The nodes no client may delete.
    public static func isSystemPath(_ path: String) -> Bool {
        path == root || path == zookeeper || path == quota || path == config
    }

    public static func isValid(_ path: String) -> Bool {
        let scalars = path.unicodeScalars
        guard let first = scalars.first, first == "/" else { return false }
        if scalars.count == 1 { return true }
        if scalars.last == "/" { return false }
        var componentLength = 0
        var componentDots = 0
        var previous: Unicode.Scalar = "/"
        for scalar in scalars.dropFirst() {
            let v = scalar.value
            if v == 0 || (v >= 0x01 && v <= 0x1F) || (v >= 0x7F && v <= 0x9F) || (v >= 0xD800 && v <= 0xF8FF)
                || (v >= 0xFFF0 && v <= 0xFFFF) || v > 0xFFFF
            {
                return false
            }
            if scalar == "/" {
                if previous == "/" { return false }
                if componentLength == componentDots && (componentDots == 1 || componentDots == 2) { return false }
                componentLength = 0
                componentDots = 0
            } else {
                componentLength += 1
                if scalar == "." { componentDots += 1 }
            }
            previous = scalar
        }
        if componentLength == componentDots && (componentDots == 1 || componentDots == 2) { return false }
        return true
    }

    /// The parent of a path as ZooKeeper computes it: everything before the last `/`, with the
    /// empty string standing for the root. `nil` when there is no `/` at all.
    public static func parent(of path: String) -> String? {
        let utf8 = path.utf8
        guard let slash = utf8.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        if slash == utf8.startIndex { return root }
        return String(path[..<slash])
    }

    /// Whether the path has a `/` and no NUL: the cheap checks create and delete make first.
    static func hasSlashAndNoNul(_ path: String) -> Bool {
        var slash = false
        for byte in path.utf8 {
            if byte == 0 { return false }
            if byte == UInt8(ascii: "/") { slash = true }
        }
        return slash
    }

    /// The last component of a path.
    public static func name(of path: String) -> String {
        let utf8 = path.utf8
        guard let slash = utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[utf8.index(after: slash)...])
    }

    /// Joins a parent and a child name.
    public static func child(_ name: String, of parent: String) -> String {
        parent == root ? "/" + name : parent + "/" + name
    }

    /// The ten-digit suffix of a sequential node, formatted as Java's `%010d` (a negative counter
    /// after wrap-around keeps its sign inside the width).
    public static func sequenceSuffix(_ counter: Int32) -> String {
        if counter >= 0 {
            let digits = String(counter)
            return String(repeating: "0", count: max(0, 10 - digits.count)) + digits
        }
        let digits = String(counter.magnitude)
        return "-" + String(repeating: "0", count: max(0, 9 - digits.count)) + digits
    }

    /// Every proper ancestor of `path`, nearest first, ending with the root.
    public static func ancestors(of path: String) -> [String] {
        var result: [String] = []
        var current = path
        while current != root, let parent = parent(of: current) {
            result.append(parent)
            current = parent
        }
        return result
    }
}
