"""pymultus.plugin."""
