"""Weir's data plane: the replica inference server, the router and the local agent.

Nothing here imports Django or the control plane: replicas and the router run without them.
"""
