"""Errors the server answers with a status of its own (mapped in one place, server.py)."""


class InferenceError(Exception):
    status = 500


class BadInput(InferenceError):
    status = 400


class UnsupportedInput(InferenceError):
    status = 415


class ScriptError(InferenceError):
    """The scoring script cannot be loaded or its init() failed: the replica cannot start."""
