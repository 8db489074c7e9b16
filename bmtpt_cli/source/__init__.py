"""Source training (SPEC §2): Stein Variational Gradient Descent over soft prompts — the RBF kernel
and the (damped) SVGD direction as pure tensor functions (`kernel`), the source loop (`svgd`)."""

from bmtpt_cli.source.kernel import damping_lambda, svgd_direction

__all__ = ["damping_lambda", "svgd_direction"]
