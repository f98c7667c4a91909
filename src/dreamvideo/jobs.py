"""Several videos from one `dreamvideo generate`: start-up (imports, model loading) is paid once.

Jobs come from repeated `--prompt` flags or from a jobs file, CSV with a header row or JSON
Lines, one video a row:

    image,prompt,output,seed,negative_prompt
    cat.png,the camera zooms in,cat_zoom.mp4,0,
    cat.png,the camera pans left,cat_pan.mp4,,

`image` is required; `prompt`, `seed` and `negative_prompt` may be empty (empty prompt: image
guidance only; empty seed: the command's `--seed`); `output` may be empty when `--output` is
given (then `<stem>-<row><suffix>`). Relative paths are read from the jobs file's folder. Every
row is checked (image readable, output writable and unique, seed in range) before any model
loads, and an error names its row.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .errors import UserError

JOB_FIELDS = ("image", "prompt", "output", "seed", "negative_prompt")


@dataclass(frozen=True)
class GenerationJob:
    """One video to write: its reference image (loaded and checked), text, seed and output."""

    image: Image.Image
    prompt: str
    output: Path
    seed: int | None  # None: the command's seed
    negative_prompt: str
    label: str  # how errors name the job: "row 3 of jobs.csv", "--prompt 2"; "" for a single run


def labelled(label: str, error: UserError) -> UserError:
    """`error` prefixed with the job it belongs to (a single run's label is empty)."""
    return UserError(f"{label}: {error}" if label else str(error))


def numbered_output(output: Path, number: int) -> Path:
    """`out.mp4` -> `out-3.mp4`; a frames folder `out` -> `out-3`."""
    return output.with_name(f"{output.stem}-{number}{output.suffix}")


def prompt_jobs(
    image: Path, prompts: list[str], output: Path, negative_prompt: str, inputs: Sequence[Path] = ()
) -> list[GenerationJob]:
    """One job a `--prompt`; several prompts write numbered outputs (`out-1.mp4`, `out-2.mp4`, ...).
    No output may be the image, nor one of `inputs` or inside one (the model folder, adapters)."""
    from .io.images import load_image

    prompts = prompts or [""]
    numbers = range(1, len(prompts) + 1) if len(prompts) > 1 else [None]
    outputs = [output if n is None else numbered_output(output, n) for n in numbers]
    labels = ["" if n is None else f"--prompt {n}" for n in numbers]
    # before reading the image, as a single run always did
    _check_outputs(outputs, labels, [Path(image)], inputs)
    reference = load_image(image)
    return [
        GenerationJob(reference, prompt, target, None, negative_prompt, label)
        for prompt, target, label in zip(prompts, outputs, labels, strict=True)
    ]


def file_jobs(
    path: Path, output: Path | None, negative_prompt: str, inputs: Sequence[Path] = ()
) -> list[GenerationJob]:
    """The jobs of a CSV or JSON Lines file, every row checked before any work. No output may be
    the jobs file or a row's image, nor one of `inputs` or inside one (the model folder, adapters)."""
    from .io.images import load_image
    from .limits import check_seed

    rows = _read_rows(path)
    if not rows:
        raise UserError(f"jobs file {path} holds no jobs")
    folder = path.resolve().parent
    images: dict[Path, Image.Image] = {}  # rows sharing an image share one decoded copy
    jobs = []
    for number, row in rows:
        label = f"row {number} of {path.name}"
        try:
            if not row.get("image"):
                raise UserError("no image given")
            image = _resolve(folder, row["image"]).resolve()
            if row.get("output"):
                target = _resolve(folder, row["output"])
            elif output is not None:
                target = numbered_output(output, number)
            else:
                raise UserError("no output given (add an `output` column or pass --output)")
            row_seed = _seed(row.get("seed"))
            check_seed(row_seed)
            if image not in images:
                images[image] = load_image(image)
            jobs.append(
                GenerationJob(
                    images[image],
                    row.get("prompt") or "",
                    target,
                    row_seed,
                    row.get("negative_prompt") or negative_prompt,
                    label,
                )
            )
        except UserError as error:
            raise labelled(label, error) from None
    _check_outputs([job.output for job in jobs], [job.label for job in jobs], [path, *images], inputs)
    return jobs


def _read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(row number from 1, fields) of a jobs file; unknown columns are refused (typos)."""
    from .io.files import read_text

    text = read_text(path, "jobs file")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = [
            _json_row(path.name, line_number, line)
            for line_number, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    elif path.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            if reader.fieldnames is None:
                return []
            repeated = sorted({n for n in reader.fieldnames if reader.fieldnames.count(n) > 1})
            if repeated:
                raise UserError(
                    f"jobs file {path.name}: the header names {', '.join(map(repr, repeated))} twice"
                )
            rows = []
            for record in reader:
                if None in record:  # more cells than the header has columns
                    raise UserError(f"{path.name} row {len(rows) + 1}: more cells than the header's columns")
                rows.append({k: (v or "").strip() for k, v in record.items()})
        except csv.Error as error:
            raise UserError(f"jobs file {path.name} is not valid CSV: {error}") from None
    else:
        raise UserError(f"jobs file must be .csv, .tsv or .jsonl, got {path.name}")
    for number, row in enumerate(rows, 1):
        for key, value in row.items():
            if "\x00" in key or "\x00" in value:
                raise UserError(f"{path.name} row {number}: a NUL character in {key.strip(chr(0))[:40]!r}")
    unknown = sorted({key for row in rows for key in row} - set(JOB_FIELDS))
    if unknown:
        raise UserError(
            f"jobs file {path.name}: unknown column {', '.join(map(repr, unknown))}; "
            f"columns are {', '.join(JOB_FIELDS)}"
        )
    return list(enumerate(rows, 1))


def _json_row(name: str, line_number: int, line: str) -> dict[str, str]:
    """One JSON Lines row: an object of strings, numbers or nulls, each key once."""
    from .io.files import parse_json

    where = f"{name} line {line_number}"
    record = parse_json(line, where, unique_keys=True)
    if not isinstance(record, dict):
        raise UserError(f"{where}: a row must be a JSON object")
    for key, value in record.items():
        if not (
            value is None
            or isinstance(value, str)
            or (isinstance(value, int) and not isinstance(value, bool))
        ):
            raise UserError(f"{where}: {key[:40]!r} must be a string, an integer or null")
    return {k: "" if v is None else str(v) for k, v in record.items()}


def _resolve(folder: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else folder / path


def _seed(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if len(text) > 40:  # int() of thousands of digits is slow, then refused by Python itself
        raise UserError(f"seed must be an integer from 0 to 2**63 - 1, got {len(text)} characters")
    try:
        return int(text)
    except ValueError:
        raise UserError(f"seed must be an integer, got {text!r}") from None


def _check_outputs(
    outputs: list[Path], labels: list[str], files: Sequence[Path] = (), folders: Sequence[Path] = ()
) -> None:
    """Every output writable, none an input (`files`, or inside `folders`: the model folder,
    adapters), and no two jobs writing the same file."""
    from .io.video import check_not_an_input, check_output_path

    seen: dict[Path, str] = {}
    for target, label in zip(outputs, labels, strict=True):
        try:
            check_output_path(target)
            check_not_an_input(target, files, folders)
        except UserError as error:
            raise labelled(label, error) from None
        key = target.resolve()
        if key in seen:
            raise UserError(f"{label}: writes {target}, as {seen[key]} does")
        seen[key] = label
