"""Weir's data plane: the replica inference server, the router, the local agent and the batch
driver.

Nothing here imports Django or the control plane: replicas and the router run without them.
"""
