"""Stein Variational Gradient Descent over soft prompts (SPEC §2): the RBF kernel
and the (damped) SVGD direction as pure tensor functions."""

from bmtpt_cli.svgd.kernel import damping_lambda, mean_pairwise_distance, rbf_kernel, svgd_direction

__all__ = ["damping_lambda", "mean_pairwise_distance", "rbf_kernel", "svgd_direction"]
