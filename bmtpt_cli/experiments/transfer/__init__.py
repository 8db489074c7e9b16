"""Transferability between tasks (SPEC §5): the transfer matrices, the indicators (prompt similarity, neuron
stimulation) and how well each predicts the transfer."""
