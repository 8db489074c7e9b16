"""`python -m bmtpt_cli`."""

from bmtpt_cli.app import main

main()
