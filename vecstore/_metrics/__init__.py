"""_metrics layer (see docs/architecture.md)."""
