"""The runtime side of the CNI specification (what libcni is to Go), plus the plugin-side
environment parser. No Kubernetes, no server: only the protocol, delegate invocation,
conflist semantics and the libcni-compatible result cache."""
