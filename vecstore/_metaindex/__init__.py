"""_metaindex layer (see docs/architecture.md)."""
