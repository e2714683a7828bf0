"""The only package that enters network namespaces."""
