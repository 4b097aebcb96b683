"""Weir's blob store: asset bytes, content-addressed on disk, served over HTTPS with the
subset of the Azure Blob Storage REST API that Azure's SDKs upload and download with.

One Django app owns the concept: the rows (``models``: storage accounts, blobs, staged
blocks, pending uploads), the storage services the control plane and workers use
(``storage``: accounts, SAS URLs, resolving a URI, writing blobs, importing local files),
the ARM datastore and
pending-upload routes (``datastores``), and the blob server itself (``views``, ``sas``,
``backends``, ``paths``).
"""
