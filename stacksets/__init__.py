"""Member-account stacks, synthesized into StackSet templates (no assets, no bootstrap, no CDK metadata)."""
