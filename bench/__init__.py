"""``make bench``: benchmarks of pymultus against the floor and Go Multus (not tests)."""
