"""pymultus.config."""
