"""The README keeps up with the code: every command of the CLI and every option of each is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

from anomaly_monitor.cli import parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def commands(top: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Each command's parser by its words ("run", "sheet init"), nested ones included."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words = f"{prefix}{name}"
                found[words] = sub
                found |= commands(sub, f"{words} ")
    return found


def test_every_command_and_each_of_its_options_is_in_the_readme() -> None:
    found = commands(parser())
    assert {"run", "validate", "backtest", "sheet init"} <= set(found)
    for words, command in found.items():
        if any(isinstance(a, argparse._SubParsersAction) for a in command._actions):
            continue  # "sheet" only groups its own commands
        assert f"-m anomaly_monitor {words}" in README, f"the README shows no `{words}` command line"
        for action in command._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert f"`{flag}" in README, f"`{words}` takes {flag}, which the README does not document"
