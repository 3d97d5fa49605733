"""_index layer (see docs/architecture.md)."""
