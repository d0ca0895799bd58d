"""The central stack's rooms. Each module adds its part to the stack's own scope (plain classes, not nested
constructs), so every construct path, and with it every logical id, is what it was before the split
(docs/architecture.md §12)."""
