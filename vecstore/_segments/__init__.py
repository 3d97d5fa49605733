"""_segments layer (see docs/architecture.md)."""
