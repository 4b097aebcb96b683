"""What Azure's clients and Weir's own agree on in every ARM path."""

# The resource provider namespace: .../providers/{PROVIDER}/workspaces/...
PROVIDER = "Microsoft.MachineLearningServices"
