/// A JSON value whose objects keep their keys in order, written the way ZooKeeper's admin server
/// (Jackson's default pretty printer) writes its answers: `"key" : value`, two-space indents,
/// arrays on one line (`[ 1, 2 ]`, `[ ]`), empty objects as `{ }`.
public indirect enum JSONValue: Sendable, Equatable {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case null

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.object(let a), .object(let b)): return a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
        case (.array(let a), .array(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.null, .null): return true
        default: return false
        }
    }

    /// The value of `key` in an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    public var text: String {
        var out = ""
        write(into: &out, indent: 0)
        return out
    }

    private func write(into out: inout String, indent: Int) {
        switch self {
        case .object(let pairs):
            if pairs.isEmpty {
                out += "{ }"
                return
            }
            out += "{\n"
            let inner = String(repeating: "  ", count: indent + 1)
            for (index, (key, value)) in pairs.enumerated() {
                out += inner
                Self.writeString(key, into: &out)
                out += " : "
                value.write(into: &out, indent: indent + 1)
                out += index == pairs.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: "  ", count: indent) + "}"
        case .array(let values):
            if values.isEmpty {
                out += "[ ]"
                return
            }
            out += "[ "
            for (index, value) in values.enumerated() {
                value.write(into: &out, indent: indent)
                if index < values.count - 1 { out += ", " }
            }
            out += " ]"
        case .string(let string):
            Self.writeString(string, into: &out)
        case .int(let value):
            out += String(value)
        case .double(let value):
            if value.isNaN || value.isInfinite {
                out += "\"\(value)\""
            } else if value == value.rounded(), abs(value) < 1e15 {
                out += "\(Int64(value)).0"
            } else {
                out += "\(value)"
            }
        case .bool(let value):
            out += value ? "true" : "false"
        case .null:
            out += "null"
        }
    }

    private static func writeString(_ string: String, into out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
