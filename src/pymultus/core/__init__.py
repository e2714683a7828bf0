"""pymultus.core."""
