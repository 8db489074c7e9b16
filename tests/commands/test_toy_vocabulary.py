"""The toy model refuses text it does not know (issue 26): a task mostly <unk> to it, naming the share it
knows; and label words that map to <unk> (rank scoring would tie)."""

from pathlib import Path

import pytest

from bmtpt_cli.data.vocabulary import check_label_words, unknown_label_words
from clihelpers import bmtpt, toy_particles

RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"
REAL_TEXT = ("The Prime Minister announced sweeping reforms to the pension system on Tuesday.",
             "Parliament approved the government's budget proposal after a lengthy debate.")
TOY_TEXT = ("the boy saw a dog and a cat in the garden at noon .", "it was lovely .")

pytestmark = pytest.mark.usefixtures("user_shell")


def _rte_folder(sentences, rows=40):
    """A --data-dir with an RTE train and dev file of `sentences`; its absolute path (split caches key on the path)."""
    folder = Path("data/glue/RTE").resolve()
    folder.mkdir(parents=True)
    labels = ("entailment", "not_entailment")
    body = "".join(f"{i}\t{sentences[0]}\t{sentences[1]}\t{labels[i % 2]}\n" for i in range(rows))
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text(RTE_HEADER + body)
    return str(folder.parent.parent)


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in result.output, message
    return message


def test_the_toy_model_refuses_real_text_naming_the_share():
    data = _rte_folder(REAL_TEXT)
    message = _one_line_error(bmtpt("adapt", "--preset", "toyworld", "--tasks", "rte", "--data-dir", data,
                                    "--init", "random", "--steps", "1", "--warmup-steps", "0", "--out", "t.safetensors"))
    assert "the toy model knows" in message and "% of the words of task rte" in message and "--model t5-base" in message


def test_after_the_demo_source_real_targets_are_refused_not_scored_at_chance():
    """The issue's scenario: README command 1, then `adapt --tasks rte --data-dir D` without a preset."""
    toy_particles()
    data = _rte_folder(REAL_TEXT)
    message = _one_line_error(bmtpt("adapt", "--tasks", "rte", "--data-dir", data, "--steps", "1", "--warmup-steps", "0"))
    assert "the toy model knows" in message and "task rte" in message


def test_label_words_the_tokenizer_does_not_know_are_refused():
    data = _rte_folder(TOY_TEXT)
    message = _one_line_error(bmtpt("adapt", "--preset", "toyworld", "--tasks", "rte", "--data-dir", data,
                                    "--init", "random", "--steps", "1", "--warmup-steps", "0", "--out", "t.safetensors"))
    assert "entailment" in message and "<unk>" in message and "rte" in message


class _WordTokenizer:
    """A word-level tokenizer that knows `words` (ids from 3) and maps the rest to <unk> (id 2)."""

    unk_token_id = 2

    def __init__(self, words):
        self.ids = {word: 3 + i for i, word in enumerate(words)}

    def __call__(self, text, add_special_tokens=True):
        from types import SimpleNamespace

        return SimpleNamespace(input_ids=[self.ids.get(w, 2) for w in text.split()] + ([1] if add_special_tokens else []))


def test_label_words_are_checked_for_every_model():
    from bmtpt_cli.data.registry import get_task
    from bmtpt_cli.errors import BmtptError

    tokenizer = _WordTokenizer(["entailment", "0", "1"])
    assert unknown_label_words(tokenizer, ("entailment", "not_entailment")) == ["not_entailment"]
    check_label_words(tokenizer, get_task("rte"), "digits")  # 0 and 1 are known
    with pytest.raises(BmtptError) as excinfo:
        check_label_words(tokenizer, get_task("rte"), "words")
    assert "'not_entailment'" in str(excinfo.value) and "<unk>" in str(excinfo.value)


def test_the_data_layer_names_the_same_toy_folder_as_the_runner():
    from bmtpt_cli.data.vocabulary import TOY_TOKENIZER_DIR
    from bmtpt_cli.runner.model import TOY_DIR

    assert TOY_TOKENIZER_DIR == TOY_DIR and (TOY_DIR / "tokenizer.json").is_file()
