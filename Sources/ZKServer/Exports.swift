// zoo.cfg and JAAS files live in ZKServerFormats (which needs no sockets, TLS or metrics, so the
// fuzz targets build without them); an importer of ZKServer gets them as before.
@_exported import ZKServerFormats
