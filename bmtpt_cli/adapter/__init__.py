"""Target adaptation: prompts W ⊙ abᵀ initialised from the source posterior, with a Gaussian prior."""
