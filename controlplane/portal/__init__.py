"""The admin portal for IT: server-rendered pages under /portal/ over the API's own services."""
