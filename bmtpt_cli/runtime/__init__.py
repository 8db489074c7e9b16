"""Run infrastructure shared by every command: safe file writes and output locks (`files`),
checkpoints and step logs (`checkpoint`), the resume/checkpoint/stop loop helper (`loop`), the
learning-rate schedule (`schedule`), data parallelism (`distributed`) and progress reporting
(`progress`). Nothing here knows about SVGD, target prompts or the command line.
"""
