"""_filter layer (see docs/architecture.md)."""
