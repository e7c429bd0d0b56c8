"""The central store: the authoritative copy of every namespace and key, over gRPC."""
