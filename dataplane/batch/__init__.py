"""Batch scoring: the driver process that runs a batch deployment's scoring script over
mini-batches of files (Azure's ``init()`` / ``run(mini_batch)`` contract). It runs in the
deployment's own environment, so this package uses the standard library only."""
