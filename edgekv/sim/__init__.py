"""The simulation engine: the real nodes, in one process, on virtual time (see engine)."""
