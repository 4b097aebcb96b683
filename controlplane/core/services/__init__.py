"""Writes of desired state: each records an Operation and enqueues its task after commit."""
