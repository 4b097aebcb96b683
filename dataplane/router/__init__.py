"""The scoring router (Weir's ``azureml-fe``): every scoring call passes through it.

It serves from an in-memory routing table fed by the control plane through Redis; the hot
path touches neither Postgres nor Redis, and a Redis outage leaves it serving the last table.
"""
