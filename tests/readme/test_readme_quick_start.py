"""The README's quick start: exactly two commands, the second of which CI runs verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^    \$ (.+)$", section, flags=re.MULTILINE)


def test_quick_start_has_exactly_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "notarychain-node up" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r'^README_TEST_COMMAND="(.+)"$', ci, flags=re.MULTILINE)
    assert match is not None
    assert match.group(1) == quick_start_commands()[1]
