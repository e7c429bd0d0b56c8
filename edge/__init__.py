"""The edge node: a regional cache in front of the central store (see docs/design.md)."""
