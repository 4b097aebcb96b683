"""The local backend's supervisor (what a kubelet is to a pod): runs each deployment's
replicas as processes on this machine, probes them, restarts them, and reports them.

It is level-triggered on files: a deployment's desired state is a JSON spec in
``{state}/desired/{id}.json`` (written by the worker's local backend); the agent writes what
it sees to ``{state}/status/{id}.json`` and replica output to ``{state}/logs/{id}/``.
"""
