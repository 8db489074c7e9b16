"""`bmtpt reproduce`: the paper's tables (SPEC §6) as plans of bmtpt runs.

`paper` states each table (its blocks, rows, columns and the paper's numbers), `plan` expands a table
into the exact `source` / `adapt` / `evaluate` / `fewshot` runs at a scale (the paper's, or the toy
world's), `cost` estimates what a plan costs from a measured step time, `state` records which runs are
finished and with which settings, and `table` reads the runs' outputs back into the paper's layout.
"""
