import Foundation
import ZKClient
import ZKRecipesCore

/// A JSON value (a service instance's payload, kept as Jackson wrote it).
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int64.self) { self = .int(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// A service instance as curator-x-discovery's `ServiceInstance` is serialised by its
/// `JsonInstanceSerializer`: `{"name","id","address","port","sslPort","payload",
/// "registrationTimeUTC","serviceType","uriSpec"}` (absent values as JSON null; unknown fields,
/// e.g. `enabled`, are accepted). A payload Curator reads back names its Java class in `@class`
/// (e.g. `{"@class":"java.util.LinkedHashMap","k":"v"}`).
public struct ServiceInstance: Sendable, Hashable, Codable {
    public enum ServiceType: String, Sendable, Hashable, Codable {
        case dynamic = "DYNAMIC", `static` = "STATIC", permanent = "PERMANENT", dynamicSequential = "DYNAMIC_SEQUENTIAL"
    }

    public var name: String
    public var id: String
    public var address: String?
    public var port: Int?
    public var sslPort: Int?
    public var payload: JSONValue?
    public var registrationTimeUTC: Int64
    public var serviceType: ServiceType
    /// Curator's `UriSpec`, kept as JSON (`{"parts":[{"value":..,"variable":..}]}`).
    public var uriSpec: JSONValue?
    public var enabled: Bool?

    public init(name: String, id: String = UUID().uuidString.lowercased(), address: String? = nil, port: Int? = nil, sslPort: Int? = nil,
                payload: JSONValue? = nil, registrationTimeUTC: Int64 = Int64(Date().timeIntervalSince1970 * 1000),
                serviceType: ServiceType = .dynamic, uriSpec: JSONValue? = nil) {
        self.name = name
        self.id = id
        self.address = address
        self.port = port
        self.sslPort = sslPort
        self.payload = payload
        self.registrationTimeUTC = registrationTimeUTC
        self.serviceType = serviceType
        self.uriSpec = uriSpec
    }

    enum CodingKeys: String, CodingKey {
        case name, id, address, port, sslPort, payload, registrationTimeUTC, serviceType, uriSpec, enabled
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        id = try c.decode(String.self, forKey: .id)
        address = try c.decodeIfPresent(String.self, forKey: .address)
        port = try c.decodeIfPresent(Int.self, forKey: .port)
        sslPort = try c.decodeIfPresent(Int.self, forKey: .sslPort)
        payload = try c.decodeIfPresent(JSONValue.self, forKey: .payload)
        if payload == .null { payload = nil }
        registrationTimeUTC = try c.decodeIfPresent(Int64.self, forKey: .registrationTimeUTC) ?? 0
        serviceType = try c.decodeIfPresent(ServiceType.self, forKey: .serviceType) ?? .dynamic
        uriSpec = try c.decodeIfPresent(JSONValue.self, forKey: .uriSpec)
        if uriSpec == .null { uriSpec = nil }
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(id, forKey: .id)
        try c.encode(address, forKey: .address)
        try c.encode(port, forKey: .port)
        try c.encode(sslPort, forKey: .sslPort)
        try c.encode(payload ?? .null, forKey: .payload)
        try c.encode(registrationTimeUTC, forKey: .registrationTimeUTC)
        try c.encode(serviceType, forKey: .serviceType)
        try c.encode(uriSpec ?? .null, forKey: .uriSpec)
        if let enabled { try c.encode(enabled, forKey: .enabled) }
    }

    /// The node data (JSON, UTF-8).
    public func serialized() throws -> [UInt8] {
        Array(try JSONEncoder().encode(self))
    }

    public static func deserialize(_ bytes: [UInt8]) throws -> ServiceInstance {
        try JSONDecoder().decode(ServiceInstance.self, from: Data(bytes))
    }
}

/// Service registration and lookup in curator-x-discovery's layout: instance `id` of service
/// `name` is the node `<basePath>/<name>/<id>` holding its JSON; dynamic instances are
/// ephemeral (they go with the session), the others persistent. A Java process using Curator's
/// `ServiceDiscovery` with `JsonInstanceSerializer` on the same base path sees Swift's instances
/// and the reverse.
///
/// Registrations made here are made again after the session is replaced only by registering
/// again; an instance whose session expired is gone (as with Curator, whose own re-registration
/// needs a live `ServiceDiscovery` and a new session).
public struct ServiceDiscovery: Sendable {
    public let client: ZooKeeperClient
    public let basePath: String

    public init(client: ZooKeeperClient, basePath: String) {
        self.client = client
        self.basePath = basePath
    }

    public func pathFor(name: String, id: String? = nil) -> String {
        let service = CuratorNames.join(basePath, name)
        guard let id else { return service }
        return CuratorNames.join(service, id)
    }

    /// Registers an instance (replacing one with the same id, as Curator does).
    public func register(_ instance: ServiceInstance) async throws {
        let mode: CreateMode
        switch instance.serviceType {
        case .dynamic: mode = .ephemeral
        case .dynamicSequential: mode = .ephemeralSequential
        case .static, .permanent: mode = .persistent
        }
        let path = pathFor(name: instance.name, id: instance.id)
        let data = try instance.serialized()
        do {
            try await client.createCreatingParents(path, data: data, mode: mode)
        } catch ZooKeeperError.nodeExists {
            try await client.delete(path)
            try await client.createCreatingParents(path, data: data, mode: mode)
        }
    }

    public func update(_ instance: ServiceInstance) async throws {
        try await client.setData(pathFor(name: instance.name, id: instance.id), data: try instance.serialized())
    }

    public func unregister(_ instance: ServiceInstance) async throws {
        do { try await client.delete(pathFor(name: instance.name, id: instance.id)) } catch ZooKeeperError.noNode {}
    }

    /// The service names registered under the base path.
    public func names() async throws -> [String] {
        do { return try await client.getChildren(basePath).sorted() } catch ZooKeeperError.noNode { return [] }
    }

    /// The instances of a service (those whose data does not parse are skipped).
    public func instances(of name: String) async throws -> [ServiceInstance] {
        let ids: [String]
        do { ids = try await client.getChildren(pathFor(name: name)) } catch ZooKeeperError.noNode { return [] }
        var result: [ServiceInstance] = []
        for id in ids.sorted() {
            if let instance = try await instance(name: name, id: id) { result.append(instance) }
        }
        return result
    }

    /// One instance, nil when it is not registered.
    public func instance(name: String, id: String) async throws -> ServiceInstance? {
        do {
            let (data, _) = try await client.getData(pathFor(name: name, id: id))
            return try? ServiceInstance.deserialize(data)
        } catch ZooKeeperError.noNode {
            return nil
        }
    }
}
