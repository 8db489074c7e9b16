"""The SuperGLUE tasks of SPEC §7: from `aps/super_glue` on the hub, or the official JSONL files.

Local layout (the SuperGLUE distribution): `superglue/<Task>/train.jsonl` and `val.jsonl`, with
the folders `BoolQ`, `CB`, `MultiRC`, `WiC`, `WSC`, `ReCoRD` (lowercase accepted too). The official
split "validation" is `val.jsonl`. Official test files have no labels and are never read: the
protocol builds dev and test from train and validation (SPEC §7).

Per-task choices, the same whichever source the rows come from:

- MultiRC is split by QUESTION, not by row. Records are answer options (one per option, `group` =
  "<passage idx>-<question idx>"), but per-question EM needs every option of a question in the
  same split, so the S rule is applied to questions: the official validation's question ids are
  shuffled with seed 42 and the first half of the questions (all their options) is dev, the rest
  test. This departs from a naive row split on purpose.
- WSC's input is one field `text`: the passage with the noun span wrapped as `* noun *` and the
  pronoun as `# pronoun #` (the T5/ATTEMPT marking: a mark, a space, the words, a space, a mark;
  the text's own words and whitespace are untouched). When the two spans overlap, only the noun is
  marked, as the baselines' regex marking ends up doing (see `mark_spans`; official val.jsonl line
  96). Span indexes count whitespace-separated words. The words found there must match the span
  text (case, punctuation and a possessive 's ignored); when they do not, the nearest match at
  most two words away is used (the official val.jsonl has one pronoun index off by one, line 43),
  and failing that loading stops with an error naming the file and line (hub: the row).
- ReCoRD has one record per question: `label` = the first gold answer, `answers` = the distinct
  gold answer texts, `candidates` = the distinct entity texts (what rank scoring chooses from),
  both sorted (the hub ships answers sorted and entities as an unordered set, so sorting makes
  both sources agree; T5's TFDS input sorts them too), `entities` = the candidates joined with
  ", ", `group` = "<passage idx>-<query idx>", `query` with its `@placeholder` as is. `passage`
  follows T5's ReCoRD preprocessing: a "\\n@highlight\\n" marker after . ? ! " or ' becomes a
  space, any other becomes ". ". Questions without answers (unlabelled) are skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from pathlib import Path

from bmtpt_cli.data.benchmark import HubSource, LocalSource, benchmark_task
from bmtpt_cli.data.sources import RowParser, field, jsonl_reader, label_id, locate, task_file
from bmtpt_cli.data.splits import LARGE, SMALL, SPLIT_SEED, SplitRule, shuffled
from bmtpt_cli.data.task import Task
from bmtpt_cli.errors import BmtptError, excerpt

HUB_REPO = "aps/super_glue"
FILES = {"train": ("train.jsonl",), "validation": ("val.jsonl",)}
"""Official split -> file name in a task's folder (the test files are unlabelled, never read)."""

UNLABELLED = -1
"""The hub's label for unlabelled rows (official test)."""

_BOOL_LABELS = {False: 0, True: 1}  # JSONL BoolQ / WiC / WSC labels are JSON booleans
_BINARY_IDS = {0: 0, 1: 1}  # hub ids, and MultiRC's 0/1 answer labels
_CB_LABELS = {"entailment": 0, "contradiction": 1, "neutral": 2}  # JSONL strings; hub ids are the same order
_CB_IDS = {0: 0, 1: 1, 2: 2}

WSC_MARKS = ("*", "#")
"""Marks around WSC's noun (span1) and pronoun (span2)."""
_WSC_SPAN_KEYS = ("span1_text", "span1_index", "span2_text", "span2_index")
WSC_SEARCH_WORDS = 2
"""How far (in words) from its index a WSC span is looked for when it is not at the index."""

FILE_KEY = "column/field"
"""The word errors use for a key missing from a line of a SuperGLUE file (hub rows say "field")."""


# --- local files ---------------------------------------------------------------------------------


def official_file(folder: Path, split: str, task: str) -> Path:
    """The JSONL file of an official split ("train" or "validation") in a task's folder."""
    if split not in FILES:
        raise BmtptError(f"task {task} has no labelled official {split} split in the SuperGLUE files (train, val)")
    return task_file(folder, FILES[split], task, split)


def line_getter(path: Path, line: int) -> Callable:
    """`field` for the objects on one line of a SuperGLUE file: get(obj, key)."""
    return functools.partial(field, where=path, position=line, what=FILE_KEY)


def flat_parser(fields: tuple[str, ...], labels: dict) -> RowParser:
    """Parser for one-example-per-line tasks (BoolQ, CB, WiC): the fields and the mapped label."""

    def parse(row: dict, path: Path, line: int) -> list[dict]:
        get = line_getter(path, line)
        record = {name: get(row, name) for name in fields}
        record["label"] = label_id(get(row, "label"), labels, path, line)
        return [record]

    return parse


def parse_multirc(row: dict, path: Path, line: int) -> list[dict]:
    """One record per answer option of every question of one MultiRC passage."""
    get = line_getter(path, line)
    passage = get(row, "passage")
    paragraph = get(passage, "text")
    passage_idx = get(row, "idx")
    records = []
    for question in get(passage, "questions"):
        text = get(question, "question")
        group = f"{passage_idx}-{get(question, 'idx')}"
        for answer in get(question, "answers"):
            label = label_id(get(answer, "label"), _BINARY_IDS, path, line)
            records.append(multirc_record(text, get(answer, "text"), paragraph, label, group))
    return records


def parse_wsc(row: dict, path: Path, line: int) -> list[dict]:
    """The WSC record of one line (spans under `target`)."""
    get = line_getter(path, line)
    target = get(row, "target")
    spans = {key: get(target, key) for key in _WSC_SPAN_KEYS}
    label = label_id(get(row, "label"), _BOOL_LABELS, path, line)
    return [wsc_record(get(row, "text"), spans, label, locate(path, line))]


def parse_record(row: dict, path: Path, line: int) -> list[dict]:
    """One ReCoRD record per answered question of one passage."""
    get = line_getter(path, line)
    passage = get(row, "passage")
    text = get(passage, "text")
    entities = [entity_text(text, entity, path, line) for entity in get(passage, "entities")]
    passage_idx = get(row, "idx")
    records = []
    for qa in get(row, "qas"):
        query, group = get(qa, "query"), f"{passage_idx}-{get(qa, 'idx')}"
        answers = [get(answer, "text") for answer in qa.get("answers") or ()]
        record = record_record(text, query, entities, answers, group)
        if record is not None:
            records.append(record)
    return records


def entity_text(text: str, entity: dict, path: Path, line: int) -> str:
    """The passage text of a ReCoRD entity span (`end` is inclusive)."""
    get = line_getter(path, line)
    start, end = get(entity, "start"), get(entity, "end")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end < len(text)):
        raise BmtptError(f"{locate(path, line)}: entity span {excerpt(start)}..{excerpt(end)} is not inside the passage")
    return text[start : end + 1]


# --- hub rows ------------------------------------------------------------------------------------


def hub_label(row: dict, ids: dict, where: str, index: int) -> int | None:
    """The label id of a hub row; None for an unlabelled row (-1); an error for an unknown id."""
    value = field(row, "label", where, index)
    if value == UNLABELLED:
        return None
    return label_id(value, ids, where, index)


def flat_normaliser(fields: tuple[str, ...], ids: dict) -> Callable[[dict, str, int], dict | None]:
    """Hub normaliser for BoolQ, CB, WiC: the fields and the label id; None for unlabelled rows."""

    def normalise(row: dict, where: str, index: int) -> dict | None:
        label = hub_label(row, ids, where, index)
        if label is None:
            return None
        return {**{name: field(row, name, where, index) for name in fields}, "label": label}

    return normalise


def normalise_multirc(row: dict, where: str, index: int) -> dict | None:
    """A hub MultiRC row (already one answer option) as a record; None when unlabelled."""
    label = hub_label(row, _BINARY_IDS, where, index)
    if label is None:
        return None
    get = functools.partial(field, where=where, position=index)
    idx = get(row, "idx")
    group = f"{get(idx, 'paragraph')}-{get(idx, 'question')}"
    return multirc_record(get(row, "question"), get(row, "answer"), get(row, "paragraph"), label, group)


def normalise_wsc(row: dict, where: str, index: int) -> dict | None:
    """A hub `wsc.fixed` row as a record; None when unlabelled."""
    label = hub_label(row, _BINARY_IDS, where, index)
    if label is None:
        return None
    spans = {key: field(row, key, where, index) for key in _WSC_SPAN_KEYS}
    return wsc_record(field(row, "text", where, index), spans, label, locate(where, index))


def normalise_record(row: dict, where: str, index: int) -> dict | None:
    """A hub ReCoRD row (one question) as a record; None when it has no answers."""
    get = functools.partial(field, where=where, position=index)
    idx = get(row, "idx")
    group = f"{get(idx, 'passage')}-{get(idx, 'query')}"
    return record_record(get(row, "passage"), get(row, "query"), get(row, "entities"), get(row, "answers") or (), group)


# --- records, whichever the source ---------------------------------------------------------------


def multirc_record(question: str, answer: str, paragraph: str, label: int, group: str) -> dict:
    """A MultiRC answer option as a record."""
    return {"question": question, "answer": answer, "paragraph": paragraph, "label": label, "group": group}


def wsc_record(text: str, spans: dict, label: int, location: str) -> dict:
    """A WSC record: the text with its noun and pronoun spans marked."""
    noun = (spans["span1_index"], spans["span1_text"], WSC_MARKS[0])
    pronoun = (spans["span2_index"], spans["span2_text"], WSC_MARKS[1])
    return {"text": mark_spans(text, [noun, pronoun], location), "label": label}


def record_record(passage: str, query: str, entities, answers, group: str) -> dict | None:
    """A ReCoRD question as a record (see the module docstring); None when it has no answers."""
    answers = tuple(sorted(set(answers)))
    if not answers:
        return None
    candidates = tuple(sorted(set(entities)))
    return {
        "query": query,
        "entities": ", ".join(candidates),
        "passage": record_passage(passage),
        "label": answers[0],
        "answers": answers,
        "candidates": candidates,
        "group": group,
    }


def record_passage(text: str) -> str:
    """A ReCoRD passage with its highlight markers turned into sentence breaks (as T5 does)."""
    text = re.sub(r"([.?!\"'])\n@highlight\n", r"\1 ", text)
    return re.sub(r"\n@highlight\n", ". ", text)


# --- WSC span marking ----------------------------------------------------------------------------


def mark_spans(text: str, spans: list[tuple[int, str, str]], location: str) -> str:
    """`text` with each (word index, span text, mark) wrapped as "mark words mark".

    Spans are marked in the order given (WSC: the noun, then the pronoun). A span whose words
    overlap those of a span already marked gets no marks: marks never interleave, and overlapping
    spans keep only the first span's marks. This is what the baselines do (T5's `preprocessors.wsc`,
    copied by ATTEMPT/MPT): they mark the noun with a regex at its word index, then look for the
    pronoun at its index plus 2 when the noun starts before it; when the two overlap, the word found
    there is a mark or another word of the noun, the regex finds nothing and the pronoun is left
    unmarked. Official val.jsonl line 96 (both spans at word 19) becomes "... * their mothers * ...",
    not "# * their # mothers *". Spans that only touch (adjacent words) are both marked.
    Each span must still be found in the text (an error otherwise), overlapping or not.
    """
    words = list(re.finditer(r"\S+", text))
    inserts, marked = [], []
    for index, span_text, mark in spans:
        first = locate_span(words, index, span_text, location)
        last = first + len(span_text.split()) - 1
        if any(first <= other_last and other_first <= last for other_first, other_last in marked):
            continue  # overlaps a span already marked: left unmarked, as the baselines leave it
        marked.append((first, last))
        inserts += [(words[first].start(), f"{mark} "), (words[last].end(), f" {mark}")]
    for position, piece in sorted(inserts, reverse=True):
        text = text[:position] + piece + text[position:]
    return text


def locate_span(words: list[re.Match], index, span_text: str, location: str) -> int:
    """Word position of `span_text`: `index` when the words there match, else the nearest match
    at most `WSC_SEARCH_WORDS` away; an error naming `location` when there is none."""
    if not isinstance(index, int) or not isinstance(span_text, str) or not span_text.split():
        raise BmtptError(f"{location}: a WSC span needs a word index and a text, got {excerpt(index)} and {excerpt(span_text)}")
    wanted = _comparable(span_text.split())
    for offset in sorted(range(-WSC_SEARCH_WORDS, WSC_SEARCH_WORDS + 1), key=lambda o: (abs(o), o)):
        start = index + offset
        if 0 <= start and start + len(wanted) <= len(words):
            if _comparable(w.group() for w in words[start : start + len(wanted)]) == wanted:
                return start
    found = " ".join(w.group() for w in words[index : index + len(wanted)]) if 0 <= index < len(words) else "nothing"
    raise BmtptError(
        f"{location}: WSC span {excerpt(span_text)} is not at word {index} of the text (found {excerpt(found)}): fix the index"
    )


def _comparable(words) -> list[str]:
    """Words lowercased, without a possessive 's and without punctuation, for span matching."""
    return [re.sub(r"[^\w]", "", re.sub(r"['’]s$", "", word.lower())) for word in words]


# --- the tasks -----------------------------------------------------------------------------------


def halve_by_group(records: list[dict], seed: int = SPLIT_SEED) -> tuple[list[dict], list[dict]]:
    """(dev, test): the records' groups shuffled with `seed`, the first half of the groups dev."""
    by_group: dict[str, list[dict]] = {}
    for record in records:
        by_group.setdefault(record["group"], []).append(record)
    order = shuffled(list(by_group), seed)
    half = len(order) // 2
    return [r for g in order[:half] for r in by_group[g]], [r for g in order[half:] for r in by_group[g]]


_WHOLE_OFFICIAL = SplitRule("O", {"train": "train", "validation": "validation", "test": "validation"})
QUESTION_SPLIT = "S, by question"
"""`Task.split_rule` of MultiRC: the S rule applied to whole questions."""


def split_by_question(task: Task) -> Task:
    """`task` (built with `_WHOLE_OFFICIAL`) with the S rule applied to whole questions (MultiRC)."""

    def load_records(split: str, data_dir: Path | None) -> list[dict]:
        if split == "train":
            return task.load_records("train", data_dir)
        dev, test = halve_by_group(task.load_records("validation", data_dir))
        return dev if split == "validation" else test

    return dataclasses.replace(task, load_records=load_records, split_rule=QUESTION_SPLIT)


def _task(name, fields, words, metrics, rule, config, folders, normalise, parse, description) -> Task:
    """One SuperGLUE `benchmark_task`."""
    return benchmark_task(
        name=name,
        benchmark="superglue",
        input_fields=fields,
        label_words=words,
        metrics=metrics,
        rule=rule,
        hub=HubSource(HUB_REPO, config, normalise),
        local=LocalSource("superglue", folders, jsonl_reader(parse, split_file=official_file)),
        description=description,
    )


_YES_NO = ("false", "true")
_BOOLQ = ("question", "passage")
_CB = ("premise", "hypothesis")
_WIC = ("sentence1", "sentence2", "word")


def build_superglue_tasks() -> dict[str, Task]:
    """Fresh `Task`s (each with its own cache of official splits), by registry name."""
    return {
        "boolq": _task(
            "boolq", _BOOLQ, _YES_NO, ("accuracy",), SMALL, "boolq", ("BoolQ", "boolq"),
            flat_normaliser(_BOOLQ, _BINARY_IDS), flat_parser(_BOOLQ, _BOOL_LABELS), "yes/no question about a passage",
        ),
        "cb": _task(
            "cb", _CB, ("entailment", "contradiction", "neutral"), ("accuracy", "macro_f1"), SMALL, "cb", ("CB", "cb"),
            flat_normaliser(_CB, _CB_IDS), flat_parser(_CB, _CB_LABELS), "CommitmentBank: three-way entailment",
        ),
        "multirc": split_by_question(_task(
            "multirc", ("question", "answer", "paragraph"), _YES_NO, ("multirc_f1a", "multirc_em"), _WHOLE_OFFICIAL,
            "multirc", ("MultiRC", "multirc"), normalise_multirc, parse_multirc, "is this answer option right",
        )),
        "wic": _task(
            "wic", _WIC, _YES_NO, ("accuracy",), SMALL, "wic", ("WiC", "wic"),
            flat_normaliser(_WIC, _BINARY_IDS), flat_parser(_WIC, _BOOL_LABELS), "word in context: same sense in both",
        ),
        "wsc": _task(
            "wsc", ("text",), _YES_NO, ("accuracy",), SMALL, "wsc.fixed", ("WSC", "wsc"),
            normalise_wsc, parse_wsc, "Winograd schema: does the pronoun refer to the noun",
        ),
        "record": _task(
            "record", ("query", "entities", "passage"), None, ("record_em", "record_f1"), LARGE,
            "record", ("ReCoRD", "record"),
            normalise_record, parse_record, "cloze over news: which entity fills @placeholder",
        ),
    }


SUPERGLUE_TASKS: dict[str, Task] = build_superglue_tasks()
"""The six SuperGLUE tasks by registry name."""
