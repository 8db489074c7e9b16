"""The frozen T5: load and freeze it, prepend soft prompts, per-particle losses, rank scoring, generation."""
