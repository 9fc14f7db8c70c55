import Foundation
import XCTest
import ZKRecipes

/// The JSON of curator-x-discovery's `JsonInstanceSerializer`, as Curator 5.4 writes it.
final class ServiceInstanceJSONTests: XCTestCase {
    func testReadsCuratorsJSON() throws {
        let curator = #"{"name":"svc","id":"id1","address":"10.0.0.1","port":8080,"sslPort":null,"payload":null,"registrationTimeUTC":1796530573329,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://foo:","variable":false},{"value":"port","variable":true}]}}"#
        let instance = try ServiceInstance.deserialize(Array(curator.utf8))
        XCTAssertEqual(instance.name, "svc")
        XCTAssertEqual(instance.id, "id1")
        XCTAssertEqual(instance.address, "10.0.0.1")
        XCTAssertEqual(instance.port, 8080)
        XCTAssertNil(instance.sslPort)
        XCTAssertNil(instance.payload)
        XCTAssertEqual(instance.registrationTimeUTC, 1_796_530_573_329)
        XCTAssertEqual(instance.serviceType, .dynamic)
        guard case .object(let spec)? = instance.uriSpec, case .array(let parts)? = spec["parts"] else { return XCTFail("uriSpec") }
        XCTAssertEqual(parts.count, 3)
    }

    func testReadsATypedPayloadAndUnknownFields() throws {
        let curator = #"{"name":"svc","id":"b6","address":"fd00::2","port":null,"sslPort":443,"payload":{"@class":"java.util.LinkedHashMap","k":"v"},"registrationTimeUTC":1,"serviceType":"STATIC","uriSpec":null,"enabled":true}"#
        let instance = try ServiceInstance.deserialize(Array(curator.utf8))
        XCTAssertEqual(instance.payload, .object(["@class": .string("java.util.LinkedHashMap"), "k": .string("v")]))
        XCTAssertEqual(instance.sslPort, 443)
        XCTAssertNil(instance.port)
        XCTAssertEqual(instance.serviceType, .static)
        XCTAssertEqual(instance.enabled, true)
    }

    func testWritesEveryFieldCuratorExpects() throws {
        let instance = ServiceInstance(name: "w", id: "1", address: "h", port: 1, registrationTimeUTC: 5)
        let json = try JSONSerialization.jsonObject(with: Data(try instance.serialized())) as! [String: Any]
        XCTAssertEqual(Set(json.keys), ["name", "id", "address", "port", "sslPort", "payload", "registrationTimeUTC", "serviceType", "uriSpec"])
        XCTAssertTrue(json["payload"] is NSNull)
        XCTAssertTrue(json["sslPort"] is NSNull)
        XCTAssertEqual(json["serviceType"] as? String, "DYNAMIC")
        XCTAssertEqual(json["registrationTimeUTC"] as? Int, 5)
        XCTAssertEqual(try ServiceInstance.deserialize(try instance.serialized()), instance)
    }
}
