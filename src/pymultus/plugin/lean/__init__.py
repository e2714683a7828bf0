"""The thin plugin's lean path: ADD and DEL of the common case in a few milliseconds.

One process per CNI call means what a call imports is what it costs. The core
(``pymultus.core`` and below) is written with msgspec Structs, ``logging``, ``re``, ``typing``
and ``subprocess``: about 75 ms of imports before the first line of a call. This package
does the common ADD and DEL with the interpreter's C modules only (``posix`` — through
``oslite``, which stands in for ``os`` —, ``_json``, ``_socket``, ``_ssl``, ``_thread``,
``select``, ``binascii``, ``time``, ``gc``).

Rules of the package:

- Imports: nothing of pymultus but this package and ``pymultus.__version__``; of the standard
  library none of ``os``, ``typing``, ``re``, ``enum``, ``logging``, ``json``, ``socket``,
  ``ssl``, ``subprocess``, ``dataclasses``, ``collections``, nor msgspec (pinned by
  ``tests/integration/core/test_thin_tls.py`` and the import tests under ``tests/*/lean``).
  Type names come from ``if TYPE_CHECKING:`` blocks only. The one exception: output that only
  the full path's own parser can judge byte for byte, met *after* a side effect (a plugin's
  malformed result, a reply that is not JSON), is read with the full path's function,
  imported then.
- Happy path only. Whatever the lean path does not handle, or would have to judge (a field of
  a wrong type, an unknown key, a feature it does not do), raises ``Unhandled`` *before* any
  side effect, and ``plugin.main`` runs the full path (``plugin.call``) on the same input: the
  full path's checks and error messages stay the only ones.
- What it writes (delegate cache, libcni cache, network-status, the result, error JSON) is
  byte-for-byte what the full path writes; ``tests/integration/lean`` compares the two paths
  on the same inputs.
"""
