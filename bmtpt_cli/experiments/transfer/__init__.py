"""Transferability between tasks (SPEC §5): task-embedding similarity, the transfer matrix, retrieval."""
