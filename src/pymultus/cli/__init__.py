"""pymultus.cli."""
