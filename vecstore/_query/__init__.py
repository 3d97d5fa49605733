"""_query layer (see docs/architecture.md)."""
