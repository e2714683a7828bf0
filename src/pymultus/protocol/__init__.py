"""pymultus.protocol."""
