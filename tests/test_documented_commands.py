"""Every command the README and docs/ show in a code block is run here, so that a command a user
copies cannot silently break, and a command added to the docs without a rule below fails.

Each command meets the first rule that matches it, one of:
- run: run for real at smoke size (the tiny test model unless the command is about the shipped
  one, 1 denoising step, a few clips, outputs in a temporary folder);
- synopsis: a usage line (`[--flag]`, `DIR`): every flag it names is one the command's --help
  lists;
- parsed: the command needs what the repository lacks (a full-size model, a GPU, a dataset, a
  network install): its flags are checked against --help and every file it names in the
  repository exists (an accelerate launch: its accelerate config, and its training config loads).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXECUTABLES = ("dreamvideo", "python", "bash", "pip", "accelerate")


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for every command line in a fenced code block (continuations joined,
    `&&` chains split, trailing comments dropped)."""
    found = []
    for doc in DOCS:
        for lang, block in re.findall(r"```(\w*)\n(.*?)```", doc.read_text(), re.S):
            if lang in ("python", "toml", "json", "text", "csv"):
                continue
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                for command in line.split(" && "):
                    if command.split(" ", 1)[0] in EXECUTABLES:
                        found.append((str(doc.relative_to(ROOT)), command.strip()))
    return found


COMMANDS = documented_commands()


def _synopsis(command: str) -> bool:
    return "[" in command or bool(re.search(r"\b(IMAGE|TEXT|PATH|DIR|CONFIG|FILE|DATASET)\b", command))


def _subcommand(words: list[str]) -> list[str]:
    """`dreamvideo eval clips DATASET ...` -> ["eval", "clips"]: the words before the first
    argument that is not a subcommand."""
    groups = {"eval", "data"}
    sub = [words[1]]
    if words[1] in groups and len(words) > 2:
        sub.append(words[2])
    return sub


def _help_flags(capsys, sub: list[str]) -> set[str]:
    code, out, err = run(capsys, *sub, "--help")
    assert code == 0, err
    return set(re.findall(r"(--[\w-]+|-\w)\b", out))


def _check_flags(capsys, command: str) -> None:
    words = shlex.split(command.replace("[", " ").replace("]", " ").replace("|", " "))
    if words[0] == "accelerate":
        words = ["dreamvideo", *words[words.index("dreamvideo") + 1 :]] if "dreamvideo" in words else words
        words = (
            ["dreamvideo", *words[words.index("dreamvideo.cli") + 1 :]]
            if "dreamvideo.cli" in words
            else words
        )
    sub = _subcommand(words)
    known = _help_flags(capsys, sub)
    named = {w.split("=")[0] for w in words if re.fullmatch(r"--?[\w-]+(=.*)?", w) and w != "..."}
    assert named <= known | {"--help"}, (
        f"{command}: {sorted(named - known)} not in `dreamvideo {' '.join(sub)} --help`"
    )


def _check_accelerate(command: str) -> None:
    from dreamvideo.training.config import load_config

    words = shlex.split(command)
    config = words[words.index("--config_file") + 1]
    assert (ROOT / config).is_file(), config
    train = words[words.index("train") + 1]
    load_config(ROOT / train)


def _check_install(command: str) -> None:
    words = shlex.split(command)
    if words[0] == "bash":
        assert (ROOT / words[1]).is_file(), words[1]
        return
    extras = re.findall(r"\.\[(\w+)\]", command)
    pyproject = (ROOT / "pyproject.toml").read_text()
    for extra in extras:
        assert re.search(rf"^{extra} = \[", pyproject, re.M), f"no [{extra}] extra in pyproject.toml"
    assert "torch" not in command or "torch==" in command or "-e ." not in command or "[web]" in command


def _smoke(command: str, tmp_path: Path, model_dir: Path) -> list[str]:
    """The command's words at smoke size: 1 step, few clips, outputs in tmp_path, relative inputs
    from the repository root."""
    words = shlex.split(command)[1:]
    small = {"--steps": "1", "--num": "2", "--photos": "1"}
    for i, word in enumerate(words[:-1]):
        if word in small:
            words[i + 1] = small[word]
        elif word in ("--out", "--output", "-o"):
            words[i + 1] = str(tmp_path / Path(words[i + 1]).name)
    words = [str(ROOT / w) if (ROOT / w).is_file() else w for w in words]
    if words[0] == "generate" and "--steps" not in words:
        words += ["--steps", "1"]
    if words[:2] == ["eval", "synthetic"] or words[0] == "bench":
        words += ["--model", str(model_dir)]
    if words[0] == "bench":
        words += ["--smoke"]
    return words


# The rules, first match wins: (pattern of the command, kind, why it is run this way).
RULES: list[tuple[str, str, str]] = [
    (r"^(pip install|bash scripts/install_browser\.sh)", "install", "installs: CI's fresh clone runs them"),
    (r"^python -m pytest", "install", "the test command itself"),
    (r"^accelerate launch .*dreamvideo train", "accelerate", "needs GPUs; its configs are checked"),
    (r"^accelerate launch", "synopsis", "needs GPUs and a dataset"),
    (r"^dreamvideo web( |$)", "synopsis", "a server: its flags are checked (tests/test_web.py serves it)"),
    (r"^dreamvideo .*--model (runs/fullsize|\.\.\.)", "synopsis", "needs a full-size model"),
    (r"^dreamvideo eval (videos|ucf101|msrvtt) ", "synopsis", "needs a dataset and feature networks"),
    (
        r"^dreamvideo convert --t2v models/",
        "convert",
        "the tiny text-to-video model stands in for ModelScope",
    ),
    (r"^python -m dreamvideo\.benchmarks\.(guidance|frechet)", "module", "run at smoke size"),
    (r"^python (research|scripts)/\w+\.py", "script", "a probe or a release step (hours): the script exists"),
    (r"^dreamvideo (generate|eval synthetic|bench)", "run", "run at smoke size"),
]
SMOKE_MODULE_ARGS = {
    "dreamvideo.benchmarks.guidance": ["--frames", "2", "--steps", "1", "--repeats", "1", "--threads", "1"],
    "dreamvideo.benchmarks.frechet": ["--dim", "32", "--samples", "64", "--repeats", "1"],
}


def _rule(command: str) -> tuple[str, str, str] | None:
    if command.startswith("dreamvideo") and _synopsis(command):
        return ("synopsis", "synopsis", "a usage line")
    return next((rule for rule in RULES if re.search(rule[0], command)), None)


def test_every_documented_command_has_a_rule():
    assert len(COMMANDS) > 20
    missing = [f"{doc}: {command}" for doc, command in COMMANDS if _rule(command) is None]
    assert not missing, "documented commands without a test rule:\n" + "\n".join(missing)


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}: {c[:60]}" for d, c in COMMANDS])
def test_documented_command(doc, command, tmp_path, capsys, model_dir, t2v, monkeypatch):
    rule = _rule(command)
    assert rule is not None, command
    kind = rule[1]
    monkeypatch.chdir(tmp_path)
    if kind == "synopsis":
        _check_flags(capsys, command)
    elif kind == "install":
        _check_install(command)
    elif kind == "script":
        assert (ROOT / shlex.split(command)[1]).is_file(), command
    elif kind == "accelerate":
        _check_accelerate(command)
        _check_flags(capsys, command)
    elif kind == "convert":
        t2v.save_pretrained(tmp_path / "t2v")
        words = shlex.split(command)[1:]
        words[words.index("--t2v") + 1] = str(tmp_path / "t2v")
        words[words.index("--out") + 1] = str(tmp_path / "converted")
        code, _, err = run(capsys, *words)
        assert code == 0, err
    elif kind == "module":
        module = shlex.split(command)[2]
        done = subprocess.run(
            [sys.executable, "-m", module, *SMOKE_MODULE_ARGS[module]],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    else:
        code, _, err = run(capsys, *_smoke(command, tmp_path, model_dir))
        assert code == 0, f"{command}\n{err}"


def test_a_new_command_without_a_rule_or_a_flag_help_lacks_fails(capsys):
    assert _rule("dreamvideo frobnicate --now") is None
    with pytest.raises(AssertionError, match="--no-such-flag"):
        _check_flags(capsys, "dreamvideo eval synthetic --num N --no-such-flag X")
