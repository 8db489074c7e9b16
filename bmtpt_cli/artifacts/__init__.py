"""bmtpt's artifacts: the trainable formats that chain the commands (`native`).

`particles.safetensors` (M, l, d) from `bmtpt source` and `prompts.safetensors` (W, a_k, b_k) from
`bmtpt adapt`, with the metadata that traces each file to its settings, model and init. Exporters
to serving formats (PEFT) sit beside `native` in this package.
"""

from bmtpt_cli.artifacts.native import (
    FORMAT_VERSION,
    PARTICLES,
    PROMPTS,
    PromptArtifact,
    check_model_fit,
    common_metadata,
    file_sha256,
    load_particles,
    load_prompts,
    read_kind,
    save_particles,
    save_prompts,
)

__all__ = [
    "FORMAT_VERSION", "PARTICLES", "PROMPTS", "PromptArtifact", "check_model_fit", "common_metadata", "file_sha256",
    "load_particles", "load_prompts", "read_kind", "save_particles", "save_prompts",
]
