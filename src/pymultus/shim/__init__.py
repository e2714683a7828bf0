"""pymultus.shim."""
