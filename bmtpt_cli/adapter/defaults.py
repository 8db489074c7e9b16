"""The paper's prompt and adaptation values (SPEC §2–3), stated once: the settings' defaults and the
core's own fallbacks (a retrieval's embedding run, a random init's length) read them from here.
Imports nothing, so the command line reads it without loading torch."""

PROMPT_LENGTH = 100  # l, soft-prompt vectors (Lester et al. 2021; the paper's l = 100)
BATCH_SIZE = 32
LR_SHARED = 0.3  # W
LR_SCALES = 0.4  # a_k, b_k
WEIGHT_DECAY = 1e-5  # the baselines' AdamW weight decay
SIGMA = 1e5  # the prior's standard deviation σ
SIGMA_MIN = 1e-6  # the smallest σ: the prior term stays within float32 for any prompt the divergence guard admits
