"""Rules a core config checks itself (issue 21): a Python caller who builds `AdaptConfig` or
`SourceConfig` gets the refusal the command line gives, in one line naming the field."""

from __future__ import annotations

import math

from bmtpt_cli.errors import BmtptError

POSITIVE = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive whole number")
POSITIVE_OR_NONE = (lambda v: v is None or POSITIVE[0](v), "a positive whole number or None")
NON_NEGATIVE = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number, 0 or more")
RATE = (lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v > 0, "a finite positive number")
RATE_OR_NONE = (lambda v: v is None or RATE[0](v), "a finite positive number or None")
DECAY = (lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, "a finite number, 0 or more")


def one_of(*choices) -> tuple:
    """The rule of a field that takes one of `choices`."""
    return (lambda v: v in choices, "one of " + ", ".join(map(repr, choices)))


def check_config_values(config, rules: dict[str, tuple]) -> None:
    """Refuse, in one line naming the config and the field, a value outside its rule.

    `rules`: field → (test, what it must be), e.g. {"steps": POSITIVE}.
    """
    for name, (test, what) in rules.items():
        value = getattr(config, name)
        if not test(value):
            raise BmtptError(f"{type(config).__name__}.{name} = {value!r}: it must be {what}")
