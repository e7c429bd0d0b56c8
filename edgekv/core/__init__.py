"""edgekv's semantics as plain Python: no I/O, no clock, no randomness.

Theory of operation (after ``h11``): each module takes inputs and ``now`` and
returns decisions. ``limits`` holds the numbers, ``errors`` the one error
registry, ``model`` the values stored, ``validation`` the request rules,
``listing`` the list pages and cursors, ``namespaces`` the namespace pages,
``ratelimit`` the per-key write limit. The gRPC servers, the storage back-ends
and any simulator are shells around these.
"""
