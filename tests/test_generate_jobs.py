"""Several videos from one `dreamvideo generate` (issue 30): repeated --prompt and --jobs FILE
give the frames that single runs give, and every bad job is refused before any work."""

import json
import os

import numpy as np
from PIL import Image

from .conftest import run

GEN = ["--steps", "2", "--frames", "3", "--seed", "5"]


def _frames(folder) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.iterdir())])


def test_repeated_prompts_write_numbered_videos_equal_to_single_runs(tmp_path, capsys, photo, model_dir):
    prompts = ["a ball moves left", "the camera zooms in", ""]
    args = [a for p in prompts for a in ("--prompt", p)]
    code, out, err = run(
        capsys, "generate", photo, *args, "-o", tmp_path / "sweep", "--model", model_dir, *GEN
    )
    assert code == 0, err
    assert out.count("wrote") == 3 and out.count("seed 5") == 3
    for number, prompt in enumerate(prompts, 1):
        single = tmp_path / f"single{number}"
        code, _, err = run(capsys, "generate", photo, "-p", prompt, "-o", single, "--model", model_dir, *GEN)
        assert code == 0, err
        np.testing.assert_array_equal(_frames(tmp_path / f"sweep-{number}"), _frames(single))
    assert not np.array_equal(_frames(tmp_path / "sweep-1"), _frames(tmp_path / "sweep-2"))


def test_jobs_file_rows_csv_and_jsonl(tmp_path, capsys, photo, model_dir):
    """Relative paths from the file's folder; a row's seed over --seed; --output numbers rows without one."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    Image.open(photo).save(jobs / "ref.png")
    (jobs / "list.csv").write_text(
        "image,prompt,output,seed\nref.png,a ball moves left,one,9\nref.png,the camera zooms in,,\n"
    )
    code, out, err = run(
        capsys, "generate", "--jobs", jobs / "list.csv", "-o", tmp_path / "rest", "--model", model_dir, *GEN
    )
    assert code == 0, err
    assert "seed 9" in out and "seed 5" in out
    assert (jobs / "one").is_dir() and (tmp_path / "rest-2").is_dir()
    code, _, err = run(
        capsys, "generate", photo, "-p", "a ball moves left", "-o", tmp_path / "s", "--model", model_dir,
        "--steps", "2", "--frames", "3", "--seed", "9",
    )  # fmt: skip
    assert code == 0, err
    np.testing.assert_array_equal(_frames(jobs / "one"), _frames(tmp_path / "s"))

    rows = [{"image": str(jobs / "ref.png"), "prompt": "x", "output": str(tmp_path / "j.gif"), "seed": 1}]
    (tmp_path / "list.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    code, out, err = run(capsys, "generate", "--jobs", tmp_path / "list.jsonl", "--model", model_dir, *GEN)
    assert code == 0, err
    assert (tmp_path / "j.gif").stat().st_size > 0 and "seed 1" in out


def test_bad_jobs_are_refused_before_any_work_with_the_row_named(tmp_path, capsys, photo, model_dir):
    (tmp_path / "dot.png").parent.mkdir(exist_ok=True)
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    head = "image,prompt,output,seed\n"
    good = f"{photo},a ball,a.mp4,1\n{photo},the camera,b.mp4,2\n"
    cases = {
        "missing.csv": (head + good + "absent.png,x,c.mp4,3\n", "row 3 of missing.csv: image not found"),
        "tiny.csv": (head + good + "dot.png,x,c.mp4,3\n", "row 3 of tiny.csv: image is 1x1"),
        "noimage.csv": (head + ",x,c.mp4,3\n", "row 1 of noimage.csv: no image given"),
        "nooutput.csv": (head + f"{photo},x,,3\n", "no output given"),
        "seed.csv": (head + good + f"{photo},x,c.mp4,many\n", "row 3 of seed.csv: seed must be an integer"),
        "range.csv": (head + f"{photo},x,c.mp4,-1\n", "row 1 of range.csv: seed must be"),
        "same.csv": (head + good + f"{photo},x,a.mp4,3\n", "row 3 of same.csv: writes"),
        "kind.csv": (head + f"{photo},x,c.avi,3\n", "row 1 of kind.csv: unknown output"),
        "dir.csv": (head + f"{photo},x,nowhere/c.mp4,3\n", "does not exist"),
        "typo.csv": ("image,promt,output\n" + f"{photo},x,c.mp4\n", "unknown column 'promt'"),
        "cells.csv": (head + f"{photo},x,c.mp4,3,extra\n", "more cells"),
        "empty.csv": ("", "holds no jobs"),
        "header.csv": (head, "holds no jobs"),
        "broken.jsonl": ('{"image": "a.png"}\n{nope\n', "broken.jsonl line 2: not JSON"),
        "list.jsonl": ('["a.png"]\n', "a row must be a JSON object"),
        "jobs.txt": ("a.png\n", "must be .csv, .tsv or .jsonl"),
    }
    for name, (text, _) in cases.items():
        (tmp_path / name).write_text(text)
    for name, (_, message) in cases.items():
        before = set(os.listdir(tmp_path))
        code, out, err = run(capsys, "generate", "--jobs", tmp_path / name, "--model", model_dir, *GEN)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert message in lines[0], (name, err)
        assert "wrote" not in out and set(os.listdir(tmp_path)) == before, name  # nothing written
    for args, message in [
        (["--jobs", tmp_path / "absent.csv"], "jobs file not found"),
        (["--jobs", tmp_path / "missing.csv", photo], "give no IMAGE or --prompt"),
        (["--jobs", tmp_path / "missing.csv", "-p", "x"], "give no IMAGE or --prompt"),
        ([photo, "-p", "x"], "give IMAGE and --output"),
        ([], "give IMAGE and --output"),
        ([photo, "-p", "a", "-p", "b", "-o", tmp_path / "x.avi"], "--prompt 1: unknown output"),
    ]:
        code, _, err = run(capsys, "generate", *args, "--model", model_dir, *GEN)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)


def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path, capsys, model_dir):
    """Through the same path, `..`, a symlink or a hard link, in a single run or a jobs row: the
    image, the jobs file's image, an adapter or a model folder's file is never overwritten."""
    image = tmp_path / "in.gif"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(image)
    (tmp_path / "sub").mkdir()
    os.symlink(image, tmp_path / "link.gif")
    os.link(image, tmp_path / "hard.gif")
    adapter = tmp_path / "adapter.gif"
    adapter.write_bytes(b"not read: the output check comes first")
    original = image.read_bytes()
    outputs = [image, tmp_path / "sub" / ".." / "in.gif", tmp_path / "link.gif", tmp_path / "hard.gif"]
    base = ["generate", image, "-p", "x", "--model", model_dir, "--steps", "1"]
    for output in outputs:
        code, _, err = run(capsys, *base, "-o", output)
        assert code == 2 and "would overwrite an input" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run(capsys, *base, "-o", model_dir / "video.mp4")
    assert code == 2 and "would overwrite an input" in err
    for name in ("in.gif", "hard.gif"):  # a jobs row, its image given by another name
        (tmp_path / "jobs.csv").write_text(f"image,prompt,output\nin.gif,x,{name}\n")
        code, _, err = run(capsys, "generate", "--jobs", tmp_path / "jobs.csv", "--model", model_dir)
        assert code == 2 and "row 1 of jobs.csv" in err and "would overwrite an input" in err, err
    from dreamvideo.errors import UserError
    from dreamvideo.jobs import prompt_jobs

    try:  # an adapter given with --lora is an input too (checked here without peft)
        prompt_jobs(image, ["x"], adapter, "", [model_dir, adapter])
    except UserError as error:
        assert "would overwrite an input" in str(error)
    else:
        raise AssertionError("an adapter as the output was accepted")
    assert image.read_bytes() == original and adapter.read_bytes().startswith(b"not read")
