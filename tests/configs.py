"""Core configs at the settings' declared defaults, with a test's own values on top."""

from bmtpt_cli.settings import build, defaults


def source_config(**overrides):
    """A `SourceConfig` from `bmtpt source`'s defaults (the paper's values) and `overrides`."""
    from bmtpt_cli.source.svgd import SourceConfig

    return build(SourceConfig, defaults("source"), **overrides)


def adapt_config(**overrides):
    """An `AdaptConfig` from `bmtpt adapt`'s defaults (the paper's values) and `overrides`."""
    from bmtpt_cli.adapter.train import AdaptConfig

    return build(AdaptConfig, defaults("adapt"), **overrides)
