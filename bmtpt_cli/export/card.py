"""The README.md model card every export carries: what the prompts are, how well and how they were made.

Everything comes from the prompts file's metadata (SPEC §3 output): the base model, the tasks, the
kept dev metrics and best step, the init and prior, the recorded settings and provenance. A code
snippet shows how to load the export (with PEFT, or as a plain tensor), for the formats of SPEC §8.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli import __version__
from bmtpt_cli.artifacts.native import MEMBERS, metadata_json
from bmtpt_cli.runner.model import HUB_ID, TINY_MODEL, TOY3_MODEL, TOY_MODEL, TOY_WIDE_MODEL

PAPER = "Lee, Jeong, Yun, Kim, *Bayesian Multi-Task Transfer Learning for Soft Prompt Tuning*, Findings of EMNLP 2023"
BUILT_IN_MODELS = {TINY_MODEL: "bmtpt's offline random-weight test model", TOY_MODEL: "bmtpt's shipped toy T5",
                   TOY_WIDE_MODEL: "bmtpt's shipped wider toy T5", TOY3_MODEL: "bmtpt's shipped toy T5 of the third toy world"}
LAYOUTS = {
    "peft": "PEFT prompt tuning (`PROMPT_TUNING`, `SEQ_2_SEQ_LM`), one adapter per task",
    "peft-multitask": "PEFT multitask prompt tuning (`MULTITASK_PROMPT_TUNING`, rank 1), one adapter for all tasks",
    "safetensors": "plain safetensors tensors, one composed prompt `prompt_embeddings` (l, d) per task",
}


@dataclass(frozen=True)
class CardFacts:
    """What a model card reports about one export."""

    base_model: str
    layout: str  # a key of LAYOUTS
    tasks: list[str]
    locations: dict[str, str]  # task -> the adapter directory or tensor file, as the user passed --out
    task_ids: dict[str, int] | None  # multitask: task -> the task_ids value that selects it
    source: str  # the prompts file exported
    source_sha256: str
    metadata: dict[str, str]  # the prompts file's
    made_by: str | None  # the bmtpt command whose settings the prompts file records (None: not known)
    exported_with: str  # the `bmtpt export` command line
    formats: dict[str, tuple[str, tuple[str, ...] | None]]  # task -> (input template, targets; None: free text)


COMMAND_LINE_ONLY = ("force",)
"""Settings a repeated run must not inherit: `--force` is typed on the command line or not at all."""


def command_line(command: str, config: dict) -> str:
    """`bmtpt COMMAND --flag value …` with every set value of `config` (a resolved settings dump) as a flag.

    Booleans become `--x` / `--no-x`, lists `a,b`; unset (None) values are left out.
    """
    parts = ["bmtpt", command]
    for name, value in config.items():
        if value is None or name in COMMAND_LINE_ONLY:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list):
            parts += [flag, ",".join(map(str, value))]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def preset_text(command: str, config: dict) -> str:
    """A preset file holding every set value of `config` under `[command]`: passed with --preset (and no
    flags or BMTPT_* variables), it resolves to exactly these settings, the unset ones at their defaults."""
    lines = [f"[{command}]"]
    for name, value in config.items():
        if value is not None and name not in COMMAND_LINE_ONLY:
            lines.append(f"{name} = {_toml(value)}")
    return "\n".join(lines)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return _escape_unprintable(json.dumps(str(value), ensure_ascii=False))  # a TOML basic string


def recorded_command(config: dict, settings_by_command: dict[str, frozenset[str]]) -> str | None:
    """The bmtpt command whose settings `config` records: the one with exactly these setting names, else
    the only one that has all of them (an older file lacks newer settings); None when it is unclear."""
    keys = frozenset(config)
    exact = [name for name, fields in settings_by_command.items() if fields == keys]
    covering = [name for name, fields in settings_by_command.items() if keys <= fields]
    found = exact or covering
    return found[0] if len(found) == 1 else None


def model_card(facts: CardFacts, tasks: list[str] | None = None) -> str:
    """The README.md text for the export, or for the part of it that holds `tasks`."""
    tasks = tasks or facts.tasks
    sections = [
        _front_matter(facts),
        _summary(facts, tasks),
        _metrics(facts, tasks),
        _making(facts),
        _inputs(facts, tasks),
        _loading(facts, tasks),
    ]
    return "\n".join(sections).rstrip() + "\n"


def _json(meta: dict[str, str], key: str) -> dict:
    return metadata_json(meta, key, "the prompts file")  # bounded; run_export has already checked it


# --------------------------------------------------------------------------------- escaping metadata
# Metadata comes from a file anyone can craft: every value shown is cut to a short line, its unprintable
# characters escaped, and set as markdown text or a code span that cannot open a block, a link or HTML.
SHOWN = 200
"""The most characters of one metadata value the card shows."""
MAX_SETTINGS_SHOWN = 1 << 16
"""The longest recorded-settings block the card shows (characters)."""


def _escape_unprintable(text: str) -> str:
    """`text` with each unprintable character (controls, line breaks, format characters, lone surrogates) as a
    `\\uXXXX` or `\\UXXXXXXXX` escape (as TOML and JSON write them)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}" for ch in text)


def _line(value) -> str:
    """A metadata value as one short printable line."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return _escape_unprintable(text[:SHOWN]) + ("…" if len(text) > SHOWN else "")


def _md(value, *, table: bool = False) -> str:
    """A metadata value as markdown text: emphasis, code, links, HTML (and in a table, cell breaks) escaped."""
    text = re.sub(r"[\\`*\[\]<>~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", lambda found: "\\" + found[0], _line(value))  # snake_case stays
    return text.replace("|", "\\|") if table else text


def _code(value, *, table: bool = False) -> str:
    """A metadata value (or a path) as an inline code span, fenced by more backticks than it holds."""
    text = _line(value)
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    shown = f"{fence}{pad}{text}{pad}{fence}"
    return shown.replace("|", "\\|") if table else shown


def _fenced(language: str, text: str) -> list[str]:
    """A fenced code block holding `text`, its fence longer than any fence-like line inside."""
    runs = [len(run) for run in re.findall(r"^ {0,3}(`{3,})", text, flags=re.M)]
    fence = "`" * max([3, *(n + 1 for n in runs)])
    return [fence + language, text, fence]


def _is_hub_id(model: str) -> bool:
    return model not in BUILT_IN_MODELS and HUB_ID.fullmatch(model) is not None and ".." not in model and not Path(model).exists()


def _front_matter(facts: CardFacts) -> str:
    lines = ["---"]
    if facts.layout.startswith("peft"):
        lines.append("library_name: peft")
    if _is_hub_id(facts.base_model):
        lines.append(f"base_model: {facts.base_model}")
    lines += ["tags:", "- bmtpt", "- prompt-tuning", "- soft-prompt", "---", ""]
    return "\n".join(lines)


def _summary(facts: CardFacts, tasks: list[str]) -> str:
    meta = facts.metadata
    plural = "s" if len(tasks) > 1 else ""
    lines = [
        f"# Soft prompt{plural} for {_code(facts.base_model)}: {', '.join(tasks)}",
        "",
        f"Target prompt{plural} θ_k = W ⊙ (a_k b_kᵀ) trained by bmtpt with Bayesian Multi-Task "
        f"Prompt Tuning ({PAPER}) on a frozen T5; the model's own weights are unchanged.",
        "",
        "| | |",
        "|---|---|",
        f"| base model | {_code(facts.base_model, table=True)} (frozen)"
        + (f"; the prompts were trained on {_code(meta.get('bmtpt.model'), table=True)}" if meta.get("bmtpt.model") != facts.base_model else "")
        + " |",
        f"| prompt | l = {_md(meta.get('bmtpt.prompt_length'), table=True)} vectors of width d = {_md(meta.get('bmtpt.d_model'), table=True)}, "
        "prepended to the encoder's input embeddings |",
        f"| format | {LAYOUTS[facts.layout]} |",
        f"| exported from | {_code(facts.source, table=True)} (sha256 `{facts.source_sha256}`) |",
        f"| bmtpt | trained with {_md(meta.get('bmtpt.version', '?'), table=True)}, exported with {__version__} |",
        "",
    ]
    if meta.get("bmtpt.model") == TINY_MODEL:
        lines += ["The `tiny` model has random weights: these prompts check the pipeline, not the method.", ""]
    if meta.get(MEMBERS):
        lines += [ENSEMBLE_MEAN.format(members=_md(meta[MEMBERS])), ""]
    return "\n".join(lines)


ENSEMBLE_MEAN = ("These prompts are the mean of an ensemble's {members} members (bmtpt-ensemble), which is not the "
                 "ensemble: the ensemble averages its members' predictions, which only `bmtpt evaluate` on the prompts "
                 "file computes.")


def _metrics(facts: CardFacts, tasks: list[str]) -> str:
    meta = facts.metadata
    dev, names = _json(meta, "bmtpt.dev_metrics"), _json(meta, "bmtpt.dev_metric_names")
    header = "| task | task id | where | dev metric | dev value |" if facts.task_ids else "| task | where | dev metric | dev value |"
    lines = ["## Tasks and dev metrics", "", header, "|" + "---|" * header.count(" | ") + "---|"]
    for task in tasks:
        value = dev.get(task)
        shown = f"{value:.4f}" if isinstance(value, (int, float)) else "not recorded"
        cells = [task] + ([str(facts.task_ids[task])] if facts.task_ids else []) + [
            _code(facts.locations[task], table=True), _md(names.get(task, "main metric"), table=True), shown]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if "bmtpt.best_step" in meta:
        lines += [
            f"The prompts are those of step {_md(meta['bmtpt.best_step'])}, where the mean dev metric of the tasks trained "
            f"together ({_md(', '.join(t for t in meta.get('bmtpt.tasks', '').split(',') if t))}) was best; "
            "dev is each task's validation split of the bmtpt protocol (docs/SPEC.md §7), not its test split.",
            "",
        ]
    return "\n".join(lines)


def _making(facts: CardFacts) -> str:
    meta = facts.metadata
    provenance = _json(meta, "bmtpt.provenance")
    lines = ["## How it was made", ""]
    if "bmtpt.init" in meta:
        init = meta["bmtpt.init"]
        sha = meta.get("bmtpt.init_sha256")
        lines.append(f"- init: {_code(init)}" + (f" (sha256 {_code(sha)})" if sha else ""))
    if "bmtpt.prior" in meta:
        lines.append(f"- prior: {_md(meta['bmtpt.prior'])}")
    if provenance:
        recorded = provenance.get("versions")
        versions = ", ".join(f"{k} {v}" for k, v in recorded.items() if v) if isinstance(recorded, dict) else ""
        lines.append(f"- trained {_md(provenance.get('created', '?'))} on {_md(provenance.get('device', '?'))}"
                     + (f", code {_md(provenance['git'])}" if provenance.get("git") else "") + (f" ({_md(versions)})" if versions else ""))
        if provenance.get("cpu"):  # what round-off depends on (bmtpt before --threads did not record it)
            lines.append(f"- CPU {_md(provenance['cpu'])} ({_md(provenance.get('cpu_capability', '?'))}), "
                         f"{_md(provenance.get('threads', '?'))} threads: the same seed gives the same numbers there")
    lines.append("")
    config = _json(meta, "bmtpt.config")
    preset = _checked_preset(facts.made_by, config) if facts.made_by and config else None
    if preset is not None:
        lines += [
            f"Every setting the run recorded, as a preset: save it as `{facts.made_by}-run.toml` and "
            f"`bmtpt {facts.made_by} --preset {facts.made_by}-run.toml` repeats the run (paths are as the run saw them).", "",
            *_fenced("toml", preset), "",
        ]
    elif config:
        shown = json.dumps(config, indent=2, sort_keys=True, default=str)  # ASCII: every unprintable character escaped
        lines += (["The settings the run recorded (`bmtpt.config`):", "", *_fenced("json", shown), ""] if len(shown) <= MAX_SETTINGS_SHOWN
                  else [f"The settings the run recorded (`bmtpt.config`, {len(shown)} characters) are too long to show here.", ""])
    lines += ["Exported with:", "", *_fenced("bash", _escape_unprintable(facts.exported_with)), ""]
    return "\n".join(lines)


def _checked_preset(command: str, config: dict) -> str | None:
    """The preset of `config` when it reads back as exactly the settings it writes (every value a TOML value that
    round-trips, no value too long to show), else None: a crafted `bmtpt.config` cannot add settings or tables."""
    preset = preset_text(command, config)
    if len(preset) > MAX_SETTINGS_SHOWN:
        return None
    try:
        parsed = tomllib.loads(preset)
    except tomllib.TOMLDecodeError:
        return None
    written = [line.split(" = ", 1)[0] for line in preset.splitlines()[1:]]
    return preset if parsed == {command: {name: config[name] for name in written}} and len(written) == len(set(written)) else None


def _inputs(facts: CardFacts, tasks: list[str]) -> str:
    data = _json(facts.metadata, "bmtpt.data")
    form = "`field: value` pairs" if data.get("taskless") else "the task name, then `field: value` pairs"
    lines = [
        "## Inputs and outputs", "",
        f"Format inputs as bmtpt did when training ({form}, docs/SPEC.md §7); the prompts were trained to write:", "",
        "| task | input | target |", "|---|---|---|",
    ]
    for task in tasks:
        template, targets = facts.formats.get(task, ("(not a task this bmtpt knows)", None))
        shown = " / ".join(f"`{t}`" for t in targets) if targets else "free text"
        lines.append(f"| {task} | `{template}` | {shown} |")
    return "\n".join([*lines, ""])


def _base_loading(facts: CardFacts) -> list[str]:
    if facts.base_model in BUILT_IN_MODELS:
        return [
            "from bmtpt_cli.runner.model import load_frozen_t5",
            "",
            f"base, tokenizer = load_frozen_t5({json.dumps(facts.base_model)})  # {BUILT_IN_MODELS[facts.base_model]}",
        ]
    return [
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer",
        "",
        f"base = AutoModelForSeq2SeqLM.from_pretrained({json.dumps(facts.base_model)})",
        f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(facts.base_model)})",
    ]


def _loading(facts: CardFacts, tasks: list[str]) -> str:
    task = tasks[0]
    template = facts.formats.get(task, (f"{task} …", None))[0]
    text = f"text = {json.dumps(template, ensure_ascii=False)}  # fill in the fields as above"
    if facts.layout == "peft":
        code = [
            "from peft import PeftModel", *_base_loading(facts),
            f"model = PeftModel.from_pretrained(base, {json.dumps(facts.locations[task])})",
            text,
            'inputs = tokenizer([text], return_tensors="pt")',
            "output = model.generate(**inputs, max_new_tokens=8)",
            "print(tokenizer.batch_decode(output, skip_special_tokens=True))",
        ]
        note = "PEFT (0.10 or later) loads each task's directory as a prompt-tuning adapter:"
    elif facts.layout == "peft-multitask":
        ids = ", ".join(f'"{t}": {i}' for t, i in facts.task_ids.items())
        code = [
            "import torch", "from peft import PeftModel", *_base_loading(facts),
            f"model = PeftModel.from_pretrained(base, {json.dumps(facts.locations[task])})",
            f"task_ids = {{{ids}}}  # also in task_ids.json",
            text,
            'inputs = tokenizer([text], return_tensors="pt")',
            f'output = model.generate(**inputs, task_ids=torch.tensor([task_ids["{task}"]]), max_new_tokens=8)',
            "print(tokenizer.batch_decode(output, skip_special_tokens=True))",
        ]
        note = ("PEFT (0.10 or later) loads the directory as one multitask prompt-tuning adapter; each example "
                "picks its task's prompt W ⊙ (a_k b_kᵀ) by `task_ids` (one id per example, in forward and generate):")
    else:
        code = [
            "import torch", "from safetensors.torch import load_file", *_base_loading(facts),
            f'prompt = load_file({json.dumps(facts.locations[task])})["prompt_embeddings"]  # (l, d)',
            text,
            'inputs = tokenizer([text], return_tensors="pt")',
            "embeds = torch.cat([prompt[None], base.get_input_embeddings()(inputs.input_ids)], dim=1)",
            "mask = torch.cat([torch.ones(1, prompt.shape[0], dtype=inputs.attention_mask.dtype), inputs.attention_mask], dim=1)",
            "output = base.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=8)",
            "print(tokenizer.batch_decode(output, skip_special_tokens=True))",
        ]
        note = ("Each file holds one task's composed prompt; prepend it to the input embeddings and extend the "
                "attention mask by l ones:")
    return "\n".join(["## Load it", "", note, "", "```python", *code, "```", ""])
