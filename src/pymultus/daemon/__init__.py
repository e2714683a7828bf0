"""pymultus.daemon."""
