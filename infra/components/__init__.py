"""L3 constructs of the central stack. Every one takes keyword-only, typed props."""
