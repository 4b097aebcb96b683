"""What processes on either side of Redis agree on: key names and message shapes. Standard
library only: the control plane, the workers and the data plane all import it."""
