"""ARM views, one module per resource."""
