// zoo.cfg, JAAS files and the peer protocol's codec live in ZKServerFormats (which needs no
// sockets, TLS or metrics, so the fuzz targets build without them); an importer of ZKServer
// gets them as before.
@_exported import ZKServerFormats
