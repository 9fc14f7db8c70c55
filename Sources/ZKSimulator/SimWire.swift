import NIOCore
import ZKClientCore
import ZKCore
import ZKProtocol

/// The simulated clients' frames cross to the replicas as bytes, through both codecs.
extension ClientFrame {
    /// This frame encoded by the client's codec and decoded by the server's, as the replica's
    /// input on `connection`.
    func replicaInput(on connection: ConnectionID) throws -> ReplicaInput {
        var buffer = ByteBuffer()
        encode(into: &buffer)
        buffer.moveReaderIndex(forwardBy: 4)
        switch self {
        case .connect:
            return .connect(connection, try ClientMessageDecoder.decodeConnectRequest(&buffer))
        case .request:
            let (header, decoded) = try ClientMessageDecoder.decodeRequest(&buffer)
            return .request(connection, header, decoded)
        }
    }
}

extension ServerFrame {
    /// This frame encoded by the server's codec, as the payload the client's session core reads.
    var payload: ByteBuffer {
        var buffer = ByteBuffer()
        encode(into: &buffer)
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer
    }
}
