"""Exporting target prompts to the formats the serving ecosystem loads (`bmtpt export`, SPEC §8).

bmtpt's own `prompts.safetensors` stays the trainable format; an export is for serving:
- `peft`: PEFT prompt-tuning adapters (`PeftModel.from_pretrained(model, DIR/<task>)`), or one
  rank-1 multitask prompt-tuning adapter holding W and every task's (a_k, b_k) (`peft`);
- `safetensors`: each task's composed prompt θ_k = W ⊙ a_k b_kᵀ `(l, d)` as a plain tensor file
  (`tensors`);
every export with a README.md model card (`card`), written as a whole or not at all (`directory`);
`run` is the command's job.
"""
