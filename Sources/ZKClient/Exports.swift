// A program imports ZKClient alone: the protocol's value types (Stat, ACL, CreateMode, ErrorCode,
// ...) and the session's (ConnectionState, WatchEvent, HostAddress) come with it.
@_exported import ZKClientCore
@_exported import ZKProtocol
