"""Weir's blob store: asset bytes, content-addressed on disk, served over HTTPS with the
subset of the Azure Blob Storage REST API that Azure's SDKs upload and download with."""
