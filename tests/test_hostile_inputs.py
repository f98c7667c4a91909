# ruff: noqa: E501  (the table of cases reads best one case a line)
"""Hostile inputs, reader by reader: every malformed file a user can hand us, and the one-line
refusal (`UserError`) it gets, before any work.

`CASES` is the list to grow: a new reader, or a new file format, adds its cases here beside the
old ones. Each case builds its input in a temporary folder and names the reader it goes to and a
pattern of the refusal's text. A reader that hangs (a FIFO opened for reading, a regular
expression that backtracks) fails the case through an alarm instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from dreamvideo.errors import UserError

from .conftest import gen, run

DEEP_JSON = "[" * 100_000 + "]" * 100_000
HUGE_INT = "9" * 5000


@dataclass(frozen=True)
class Case:
    reader: str  # a key of READERS
    name: str
    build: Callable[[Path], Path]  # writes the input under the folder, returns what the reader gets
    refusal: str  # a regular expression the one-line error matches


def _write(name: str, content: str | bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return build


def _fifo(name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        os.mkfifo(path)
        return path

    return build


def _folder(name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / name).mkdir()
        return folder / name

    return build


# ----------------------------------------------------------------------------------- readers
def _image(path: Path):
    from dreamvideo.io.images import load_image

    return load_image(path)


def _video(path: Path):
    from dreamvideo.io.video import read_video

    return read_video(path)


def _jobs(path: Path):
    from dreamvideo.jobs import file_jobs

    return file_jobs(path, path.parent / "out.mp4", "")


def _captions(path: Path):
    from dreamvideo.data.videos import read_captions

    return read_captions(path)


def _motion_list(path: Path):
    from dreamvideo.evaluation.clips import read_motion_dataset

    return read_motion_dataset(path.parent, None)


def _config(path: Path):
    from dreamvideo.training.config import load_config

    config = load_config(path)
    config.model_table(), config.options()


def _model_folder(path: Path):
    from dreamvideo.pipeline import load_pipeline

    return load_pipeline(path)


def _adapter(path: Path):
    from dreamvideo.lora import read_adapter

    return read_adapter(path)


READERS: dict[str, Callable[[Path], object]] = {
    "image": _image,
    "video": _video,
    "jobs file": _jobs,
    "captions": _captions,
    "motion list": _motion_list,
    "training config": _config,
    "model folder": _model_folder,
    "adapter": _adapter,
}


# ------------------------------------------------------------------------------------ builders
def _png(folder: Path) -> Path:
    path = folder / "in.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(path)
    return path


def _jobs_csv(header: str, row: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        _png(folder)
        path = folder / "jobs.csv"
        path.write_text(f"{header}\n{row}\n")
        return path

    return build


def _jobs_jsonl(line: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        _png(folder)
        path = folder / "jobs.jsonl"
        path.write_text(line + "\n")
        return path

    return build


def _motion(line: str) -> Callable[[Path], Path]:
    return _write("motion.jsonl", line + "\n")


CONFIG_HEAD = 'stage = "t2v"\noutput_dir = "out"\n'


def _model(index: dict, fifo: str | None = None) -> Callable[[Path], Path]:
    """A model folder: model_index.json (DreamVideo's, with `index` on top), empty component
    folders, and optionally a FIFO at `fifo`."""

    def build(folder: Path) -> Path:
        model = folder / "model"
        model.mkdir()
        components = ("vae", "text_encoder", "tokenizer", "unet", "retention_branch", "scheduler")
        base = {"_class_name": "DreamVideoPipeline"} | {c: ["diffusers", "Y"] for c in components}
        (model / "model_index.json").write_text(json.dumps(base | index))
        for component in components:
            (model / component).mkdir()
        if fifo:
            os.mkfifo(model / fifo)
        return model

    return build


def _fifo_model_index(folder: Path) -> Path:
    (folder / "model").mkdir()
    os.mkfifo(folder / "model" / "model_index.json")
    return folder / "model"


# An adapter from our own writer, then edited: its metadata (`peft`: the component's LoraConfig
# fields; `info`: our record) or its tensors.
def _adapter_file(folder: Path) -> Path:
    from dreamvideo import lora
    from dreamvideo.testing import tiny_dreamvideo_pipeline

    pipe = tiny_dreamvideo_pipeline("clip", seed=0, default_num_frames=4)
    lora.add_adapter(pipe, lora.LoraSettings(rank=2, modules=["branch"]))
    state = lora.adapter_state_dict(pipe)
    return lora.save_adapter(folder / "good", state, lora.LoraSettings(rank=2, modules=["branch"]), {})


def _edited_adapter(
    peft: Callable[[dict], object] | None = None,
    info: Callable[[dict], object] | None = None,
    tensors: Callable[[dict], dict] | None = None,
    raw_peft: str | None = None,
    source: Path | None = None,
) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        from safetensors import safe_open

        from dreamvideo import lora

        good = source or _adapter_file(folder)
        with safe_open(str(good), "pt") as f:
            metadata = dict(f.metadata())
        state = load_file(good)
        components: dict[str, dict] = {}
        for key, value in json.loads(metadata[lora.ADAPTER_METADATA_KEY]).items():
            component, _, name = key.partition(".")
            components.setdefault(component, {})[name] = value
        if peft is not None:
            edited = {c: peft(fields) for c, fields in components.items()}
            if all(isinstance(e, dict) for e in edited.values()):
                edited = {f"{c}.{k}": v for c, fields in edited.items() for k, v in fields.items()}
            metadata[lora.ADAPTER_METADATA_KEY] = json.dumps(edited)
        if raw_peft is not None:
            metadata[lora.ADAPTER_METADATA_KEY] = raw_peft
        if info is not None:
            metadata[lora.DREAMVIDEO_METADATA_KEY] = json.dumps(
                info(json.loads(metadata[lora.DREAMVIDEO_METADATA_KEY]))
            )
        if tensors is not None:
            state = tensors(state)
        folder.mkdir(exist_ok=True)
        path = folder / "edited.safetensors"
        save_file(state, path, metadata=metadata)
        return path

    return build


def _first(state: dict, change: Callable[[torch.Tensor], torch.Tensor], half: str = "lora_A") -> dict:
    key = next(k for k in state if f".{half}." in k)
    return state | {key: change(state[key])}


CASES = [
    # images
    Case("image", "a FIFO named .png", _fifo("in.png"), "not a regular file"),
    Case("image", "a folder", _folder("in.png"), "is a directory"),
    Case("image", "text named .png", _write("in.png", "hello"), "not an image file"),
    # videos (eval's inputs)
    Case("video", "a FIFO named .mp4", _fifo("clip.mp4"), "not a regular file"),
    # jobs files
    Case("jobs file", "a FIFO named .csv", _fifo("jobs.csv"), "not a regular file"),
    Case("jobs file", "a folder named .csv", _folder("jobs.csv"), "is a folder"),
    Case("jobs file", "not UTF-8", _write("jobs.csv", b"image\n\xff\xfe.png\n"), "not UTF-8"),
    Case("jobs file", "a NUL in a CSV path", _jobs_csv("image,prompt", "in\x00.png,x"), "NUL"),
    Case("jobs file", "a NUL in a JSONL path", _jobs_jsonl('{"image": "in\\u0000.png"}'), "NUL"),
    Case("jobs file", "a seed of 5000 digits", _jobs_csv("image,seed", f"in.png,{HUGE_INT}"), "5000 characters"),
    Case("jobs file", "a JSON integer of 5000 digits", _jobs_jsonl(f'{{"image": "in.png", "seed": {HUGE_INT}}}'), "not usable JSON"),
    Case("jobs file", "JSON nested 100000 deep", _jobs_jsonl(DEEP_JSON), "not usable JSON"),
    Case("jobs file", "a header name twice", _jobs_csv("image,prompt,prompt", "in.png,a,b"), "twice"),
    Case("jobs file", "a key twice in a JSON row", _jobs_jsonl('{"image": "in.png", "image": "x.png"}'), "twice"),
    Case("jobs file", "a list where a path belongs", _jobs_jsonl('{"image": ["in.png"]}'), "string, an integer or null"),
    Case("jobs file", "a row that is not an object", _jobs_jsonl('["in.png"]'), "JSON object"),
    Case("jobs file", "a negative seed", _jobs_csv("image,seed", "in.png,-3"), "seed must be"),
    Case("jobs file", "an unknown column", _jobs_csv("image,promt", "in.png,x"), "unknown column"),
    # training folders: captions
    Case("captions", "not UTF-8", _write("captions.csv", b"path,caption\nclip.mp4,\xff\n"), "not UTF-8"),
    Case("captions", "a FIFO", _fifo("captions.csv"), "not a regular file"),
    Case("captions", "a JSONL row that is not an object", _write("captions.jsonl", "[1, 2]\n"), "JSON object"),
    Case("captions", "a caption that is a number", _write("captions.jsonl", '{"path": "a.mp4", "caption": 3}\n'), "must be text"),
    Case("captions", "JSON nested 100000 deep", _write("captions.jsonl", DEEP_JSON + "\n"), "not usable JSON"),
    Case("captions", "no caption column", _write("captions.csv", "path,label\na.mp4,x\n"), "path and a caption"),
    # eval clips' motion list
    Case("motion list", "a row that is not an object", _motion("3"), "JSON object"),
    Case("motion list", "a displacement that is text", _motion('{"path": "a.mp4", "caption": "x", "action": "y", "dx": "1", "dy": 0}'), "numbers"),
    Case("motion list", "a clip that is a FIFO", lambda d: (_fifo("a.mp4")(d), _motion('{"path": "a.mp4", "caption": "x", "action": "y", "dx": 1, "dy": 0}')(d))[1], "not a regular file"),
    # training configs
    Case("training config", "a FIFO", _fifo("c.toml"), "not a regular file"),
    Case("training config", "not UTF-8", _write("c.toml", b'stage = "\xff"\n'), "not UTF-8"),
    Case("training config", "arrays nested 100000 deep", _write("c.toml", "a = " + DEEP_JSON), "cannot parse"),
    Case("training config", "a number that is text", _write("c.toml", CONFIG_HEAD + '[optim]\nsteps = "many"\n'), "steps must be an integer"),
    Case("training config", "an integer past 64 bits", _write("c.toml", CONFIG_HEAD + f"[optim]\nsteps = {2**70}\n"), "steps must be an integer"),
    Case("training config", "an infinite learning rate", _write("c.toml", CONFIG_HEAD + "[optim]\nlr = inf\n"), "lr must be a number"),
    Case("training config", "a list of text where numbers belong", _write("c.toml", CONFIG_HEAD + '[model]\nblock_out_channels = ["a"]\n'), "list of an integer"),
    Case("training config", "an option of the wrong type", _write("c.toml", CONFIG_HEAD + '[stage_options]\ntext_dropout = "x"\n'), "must be a number"),
    # model folders
    Case("model folder", "a default fps of 0", _model({"default_fps": 0}), "default fps must be"),
    Case("model folder", "default frames as text", _model({"default_num_frames": "16"}), "default frames must be"),
    Case("model folder", "a default guidance scale of 1e9", _model({"default_text_guidance_scale": 1e9}), "text guidance scale must be"),
    Case("model folder", "model_index.json a FIFO", _fifo_model_index, "not a regular file"),
    Case("model folder", "model_index.json a list", lambda d: _write("model_index.json", "[]")(_folder("model")(d)).parent, "no _class_name"),
    Case("model folder", "a FIFO among its weights", _model({}, fifo="unet/diffusion_pytorch_model.safetensors"), "not a regular file"),
    Case("model folder", "a component from another module", _model({"unet": ["os", "system"]}), "not a class of diffusers"),
    Case("model folder", "a component spec of numbers", _model({"vae": [1, 2]}), "not a class of diffusers"),
    Case("model folder", "a component from a module beside this package", _model({"vae": ["dreamvideo_evil", "X"]}), "not a class of"),
    # LoRA adapters
    Case("adapter", "peft metadata a list", _edited_adapter(raw_peft="[1, 2]"), "must be JSON objects"),
    Case("adapter", "peft metadata null", _edited_adapter(raw_peft="null"), "must be JSON objects"),
    Case("adapter", "peft metadata nested 100000 deep", _edited_adapter(raw_peft=DEEP_JSON), "unreadable"),
    Case("adapter", "our record a string", _edited_adapter(info=lambda i: "text"), "must be JSON objects"),
    Case("adapter", "a rank that is text", _edited_adapter(peft=lambda f: f | {"r": "2"}), "not an integer"),
    Case("adapter", "a rank of 10**9", _edited_adapter(peft=lambda f: f | {"r": 10**9}), "not an integer from 1"),
    Case("adapter", "an alpha that is text", _edited_adapter(peft=lambda f: f | {"lora_alpha": "big"}), "not a positive number"),
    Case("adapter", "a dropout of 2", _edited_adapter(peft=lambda f: f | {"lora_dropout": 2}), r"not a number in \[0, 1\)"),
    Case("adapter", "init mode a list", _edited_adapter(peft=lambda f: f | {"init_lora_weights": [1]}), "init_lora_weights"),
    Case("adapter", "use_dora as text", _edited_adapter(peft=lambda f: f | {"use_dora": "yes"}), "not a boolean"),
    Case("adapter", "a rank_pattern that is a list", _edited_adapter(peft=lambda f: f | {"rank_pattern": [1]}), "rank_pattern"),
    Case("adapter", "target_modules a number", _edited_adapter(peft=lambda f: f | {"target_modules": 3}), "target_modules"),
    Case("adapter", "no config for its component", _edited_adapter(peft=lambda f: {}), "no LoRA config"),
    Case("adapter", "settings.modules a number", _edited_adapter(info=lambda i: {"settings": {"modules": 5}}), "malformed"),
    Case("adapter", "a name that is a number", _edited_adapter(info=lambda i: {"name": 3}), "malformed"),
    Case("adapter", "a tensor of rank 3", _edited_adapter(tensors=lambda s: _first(s, lambda t: t[None])), "float matrix"),
    Case("adapter", "an integer tensor", _edited_adapter(tensors=lambda s: _first(s, lambda t: t.int())), "float matrix"),
    Case("adapter", "a NaN weight", _edited_adapter(tensors=lambda s: _first(s, lambda t: t * float("nan"), "lora_B")), "NaN or infinite"),
    Case("adapter", "an infinite weight", _edited_adapter(tensors=lambda s: _first(s, lambda t: t + float("inf"))), "NaN or infinite"),
    Case("adapter", "lora_A without lora_B", _edited_adapter(tensors=lambda s: {k: v for k, v in s.items() if ".lora_B." not in k}), "other half"),
    Case("adapter", "a weight that is not LoRA's", _edited_adapter(tensors=lambda s: s | {"unet.conv_in.weight": torch.zeros(2, 2)}), "not a LoRA weight"),
    Case("adapter", "halves of different ranks", _edited_adapter(tensors=lambda s: _first(s, lambda t: t[:1])), "rank"),
    Case("adapter", "another model's component", _edited_adapter(tensors=lambda s: {"text_encoder." + k.split(".", 1)[1]: v for k, v in s.items()}), "not part of a DreamVideo model"),
]  # fmt: skip


@pytest.fixture()
def alarm():
    """A reader that blocks (a FIFO, a backtracking pattern) fails after 60 s instead of hanging."""

    def hang(*_):
        raise TimeoutError("the reader hung")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.reader}: {c.name}" for c in CASES])
def test_each_malformed_input_is_one_line_refusal(case: Case, tmp_path, alarm):
    target = case.build(tmp_path)
    with pytest.raises(UserError, match=case.refusal) as error:
        READERS[case.reader](target)
    assert "\n" not in str(error.value)


def test_every_reader_has_cases():
    assert {c.reader for c in CASES} == set(READERS)


def test_an_adapter_s_own_pattern_is_never_run(tmp_path, alarm):
    """A catastrophic-backtracking pattern in target_modules (and the pattern our own writer
    stored before) loads in seconds: the layers come from the tensor names, and the adapter
    changes the output exactly as its well-formed copy does."""
    from dreamvideo import lora
    from dreamvideo.testing import tiny_dreamvideo_pipeline

    pipe = tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True, default_num_frames=4)
    settings = lora.LoraSettings(rank=2, modules=["branch", "temporal"])
    params = lora.add_adapter(pipe, settings)
    with torch.no_grad():
        for p in params:
            p.add_(0.3 * torch.randn(p.shape, generator=gen(0)))
    good = lora.save_adapter(tmp_path / "good", lora.adapter_state_dict(pipe), settings, {})
    pipe.unload_lora_weights()
    image = torch.rand(1, 3, 64, 64, generator=gen(1))

    def sample(path: Path) -> torch.Tensor:
        pipe.load_lora_weights(path, adapter_name="a")
        out = pipe(image, "a ball", num_inference_steps=2, generator=gen(0), output_type="latent").frames
        pipe.unload_lora_weights()
        return out

    expected = sample(good)
    hostile = {
        "(a|aa)*$": "catastrophic",
        lora.component_patterns(settings.modules)["unet"]: "our old writer",
    }
    for number, pattern in enumerate(hostile):
        edit = _edited_adapter(peft=lambda f, p=pattern: f | {"target_modules": p}, source=good)
        edited = edit(tmp_path / str(number))
        assert torch.equal(sample(edited), expected), hostile[pattern]


def test_info_marks_a_malformed_adapter_and_lists_the_rest(tmp_path, capsys, model_dir):
    folder = tmp_path / "adapters"
    folder.mkdir()
    _edited_adapter(raw_peft="[1]")(folder).rename(folder / "bad.safetensors")
    (folder / "good").rename(folder / "fine")
    code, out, err = run(capsys, "info", "--model", model_dir, "--lora-dir", folder)
    assert code == 0, err
    assert "bad.safetensors: unusable (" in out and "must be JSON objects" in out
    assert "fine: rank 2" in out


def test_web_refuses_a_folder_with_a_malformed_adapter_before_loading(tmp_path, capsys):
    pytest.importorskip("gradio")
    folder = tmp_path / "adapters"
    folder.mkdir()
    _edited_adapter(tensors=lambda s: _first(s, lambda t: t * float("nan")))(folder)
    code, _, err = run(capsys, "web", "--lora-dir", folder, "--port", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "NaN or infinite" in err


def test_a_fifo_in_a_video_dataset_is_skipped_not_waited_on(tmp_path, alarm):
    from dreamvideo.data.videos import VideoClipSource, VideoEntry

    os.mkfifo(tmp_path / "clip.mp4")
    source = VideoClipSource([VideoEntry(tmp_path / "clip.mp4", "x")], size=32, num_frames=2)
    with pytest.raises(UserError, match="no readable video"):
        source.clip(0)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"default_fps": 0}, "default fps must be"),
        ({"default_pin_first_frame": "yes"}, "must be true or false"),
    ],
)
def test_a_model_folder_with_a_bad_default_is_refused_by_generate_before_sampling(
    tmp_path, capsys, model_dir, photo, bad, message
):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    index = json.loads((model / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps(index | bad))
    code, _, err = run(
        capsys, "generate", photo, "-p", "x", "--model", model, "-o", tmp_path / "o.mp4", "--steps", 1
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_an_output_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    """The temporary file is made beside the link's target, so the rename never crosses
    filesystems nor needs the link's folder to be writable."""
    from dreamvideo.io.video import write_video

    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "v.gif"
    target.write_bytes(b"old")
    link = tmp_path / "links" / "v.gif"
    link.symlink_to(target)
    (tmp_path / "links").chmod(0o555)  # the link's own folder is read-only
    try:
        write_video(np.zeros((2, 8, 8, 3), np.uint8), link, fps=4)
    finally:
        (tmp_path / "links").chmod(0o755)
    assert link.is_symlink() and target.read_bytes()[:3] == b"GIF"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["v.gif"]
