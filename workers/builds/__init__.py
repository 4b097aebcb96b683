"""What replicas run, built once per content hash: an environment as a virtual environment
(local backend) or as an OCI image (Kubernetes)."""
