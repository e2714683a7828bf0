"""pymultus.k8s."""
