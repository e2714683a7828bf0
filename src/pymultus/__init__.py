"""pymultus: Multus, the Kubernetes multi-network CNI meta-plugin, in Python."""

__version__ = "0.1.0"
