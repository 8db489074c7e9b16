"""The commands: each parses its settings, calls one core function, writes artifacts, renders."""
