"""Every `python cli.py ...` command the README and the model cards print names a command that exists and only
options it has: a card whose reproduce line no longer runs is a card no one can follow."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from heart_sr_tf.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "saved_models").glob("*/MODEL_CARD.md"))]
COMMAND = re.compile(r"python cli\.py((?:\\\n|[^`\n])*)")  # to the end of the line, across backslash continuations
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def commands(text: str) -> list[str]:
    """The `python cli.py` invocations of a document, continuation lines joined, inline code cut at its backtick
    (an inline command that wraps in prose is cut at the line's end: its options on the next line go unchecked)."""
    return [" ".join(match.group(1).replace("\\\n", " ").split()) for match in COMMAND.finditer(text)]


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The (sub)command the words name, and the words after its name."""
    command: click.Command = main
    while isinstance(command, click.Group) and words and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


def option_names(command: click.Command) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)} | {"--help"}


def test_the_parser_finds_commands_and_options():
    text = (
        "run `python cli.py evaluate runs/x --split test` or\n"
        "    python cli.py train srgan --config a \\\n        --name b\n"
    )
    found = commands(text)
    assert found == ["evaluate runs/x --split test", "train srgan --config a --name b"]
    command, rest = resolve(found[1].split())
    assert command.name == "srgan" and OPTION.findall(" ".join(rest)) == ["--config", "--name"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_commands_exist_with_their_options(document):
    text = document.read_text()
    found = commands(text)
    if document.name == "README.md":
        assert len(found) > 20, "the README's commands were not found"
    wrong = []
    for line in found:
        words = line.split()
        if not words or words[0].startswith(("-", "COMMAND", "<", "...")):
            continue  # `python cli.py --help`, a placeholder
        command, rest = resolve(words)
        if command is main:
            wrong.append(f"{line!r}: no command {words[0]!r}")
            continue
        known = option_names(command)
        wrong += [
            f"{line!r}: {option} is not an option of {command.name}"
            for option in OPTION.findall(" ".join(rest))
            if option not in known
        ]
    assert not wrong, "\n".join(wrong)
