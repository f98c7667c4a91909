"""The `dreamvideo web` app: a Gradio page over `DreamVideoPipeline`.

One pipeline serves every visitor; the queue runs `concurrency` generations at a time (1 by
default: a CPU is saturated by one) and holds at most `queue_size` waiting requests, so load
queues instead of exhausting memory. Uploads go through the same checks as the CLI.
"""

# No `from __future__ import annotations`: Gradio reads the handlers' `gr.Request` annotation
# at run time, and `gr` is imported inside `build_app` (gradio is an optional extra).
import functools
import logging
import math
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import limits
from .errors import UserError
from .limits import MODES

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"  # present in a source checkout
EXAMPLE_PROMPTS = {
    "cat.png": "the camera zooms in",
    "coffee.png": "the camera pans to the left",
    "rocket.png": "the camera zooms out",
}
# The page's limits, enforced by the server for every API route (a direct API call is not
# held to the sliders' ranges): (lowest, highest). A stricter policy than the CLI's (limits.py),
# as a server open to visitors should be: each bound is the shared one where that is tighter.
MAX_SEED = min(2**31 - 1, limits.MAX_SEED)  # what the page's number field shows exactly
LIMITS = {
    "steps": (1, min(100, limits.MAX_STEPS)),
    "frames": (2, min(64, limits.MAX_FRAMES)),
    "fps": (1, min(30, limits.MAX_FPS)),
    "image_scale": (0.0, min(10.0, limits.MAX_GUIDANCE_SCALE)),
    "text_scale": (0.0, min(15.0, limits.MAX_GUIDANCE_SCALE)),
    "lora_scale": (0.0, min(2.0, limits.MAX_LORA_SCALE)),
}
MAX_EXTENDED_FRAMES = 256  # "Extend" stops growing a clip here
KEEP_OUTPUTS = 200  # newest videos kept in the output folder; older ones are deleted
CACHE_CLEANUP = (3600, 86400)  # Gradio's cache: every hour, delete files older than a day


@dataclass
class Settings:
    """What a visitor chose; `describe` is the caption shown in the gallery."""

    prompt: str
    negative_prompt: str
    mode: str
    image_scale: float
    text_scale: float
    steps: int
    frames: int
    fps: int
    seed: int = 0
    adapters: tuple[str, ...] = ()  # LoRA adapters of the app's --lora-dir, all at lora_scale
    lora_scale: float = 1.0

    @classmethod
    def model_defaults(cls, pipe) -> "Settings":
        """What the page shows first: the loaded model's defaults (its model_index.json)."""
        frames, _, _, steps, image_scale, text_scale = pipe.fill_defaults(
            None, None, None, None, None, None, None
        )
        return cls(
            "",
            "",
            "image+text",
            float(image_scale),
            float(text_scale),
            steps,
            frames,
            int(pipe.config.default_fps),
        )

    def describe(self) -> str:
        text = f"“{self.prompt}”" if self.prompt else "(no prompt)"
        lora = f" · LoRA {', '.join(self.adapters)} ×{self.lora_scale:g}" if self.adapters else ""
        return (
            f"{text} · {self.mode} · s_img {self.image_scale:g} · s_txt {self.text_scale:g} · "
            f"{self.steps} steps · {self.frames} frames · seed {self.seed}{lora}"
        )


@dataclass
class SessionClip:
    """A generated video kept in the visitor's session (for "extend" and the gallery)."""

    frames: np.ndarray  # (F, H, W, 3) uint8
    path: str
    settings: Settings
    history: list[str] = field(default_factory=list)


class Cancelled(UserError):
    """The visitor pressed Stop: the generation ends at its next denoising step."""


class VideoMaker:
    """Turns page inputs into videos; all model calls go through here (and its lock)."""

    def __init__(self, pipe, output_dir: str | Path | None = None, adapters: dict[str, Path] | None = None):
        self.pipe = pipe
        # Every adapter loaded once, switched off; each request switches on the ones it picks.
        self.adapters = [
            pipe.load_lora_weights(path, adapter_name=name) for name, path in (adapters or {}).items()
        ]
        if self.adapters:
            pipe.set_adapters([])
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="dreamvideo-web-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the queue already serialises; this guards direct calls too
        self._model_lock = threading.Lock()
        self._count = 0
        self._cancelled: set[str] = set()

    def settings(
        self,
        prompt: str,
        negative_prompt: str,
        mode: str,
        image_scale: float,
        text_scale: float,
        steps: float,
        frames: float,
        fps: float,
        seed: float | None,
        random_seed: bool,
        adapters: list[str] | tuple[str, ...] = (),
        lora_scale: float = 1.0,
    ) -> Settings:
        from .limits import check_sampling_values

        if mode not in MODES:
            raise UserError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        values = {"steps": steps, "frames": frames, "fps": fps}
        for name, value in values.items():
            if not isinstance(value, int | float) or not math.isfinite(value) or float(value) != int(value):
                raise UserError(f"{name} must be a whole number, got {value}")
        steps, frames, fps = int(steps), int(frames), int(fps)
        scales = {"image_scale": image_scale, "text_scale": text_scale, "lora_scale": lora_scale}
        for name, value in {**values, **scales}.items():
            low, high = LIMITS[name]
            if not isinstance(value, int | float) or not low <= value <= high:
                raise UserError(f"{name.replace('_', ' ')} must be from {low:g} to {high:g}, got {value}")
        check_sampling_values(frames, steps, float(image_scale), float(text_scale))
        if random_seed or seed is None:
            seed = random.randrange(MAX_SEED)
        elif float(seed) != int(seed) or not 0 <= int(seed) <= MAX_SEED:
            raise UserError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed}")
        unknown = [a for a in adapters or () if a not in self.adapters]
        if unknown:
            raise UserError(
                f"no LoRA adapter named {unknown[0]!r} (this app has: {', '.join(self.adapters) or 'none'})"
            )
        return Settings(
            (prompt or "").strip(),
            (negative_prompt or "").strip(),
            mode,
            float(image_scale),
            float(text_scale),
            steps,
            frames,
            fps,
            int(seed),
            tuple(adapters or ()),
            float(lora_scale),
        )

    def generate(
        self, image: Any, settings: Settings, progress=None, session: str | None = None
    ) -> np.ndarray:
        """One clip (F, H, W, 3) uint8 from an image (path or PIL image)."""
        import torch

        from .io.images import load_image, unit_to_uint8

        if image is None:
            raise UserError("upload an image (or pick an example) first")
        reference = load_image(image) if isinstance(image, str | Path) else image
        total = settings.steps
        self._cancelled.discard(session)  # a Stop pressed before this request does not end it

        def report(_pipe, step: int, _t, tensors: dict) -> dict:
            if session is not None and session in self._cancelled:
                self._cancelled.discard(session)
                raise Cancelled("stopped")
            if progress is not None:
                progress((step + 1) / total, desc=f"denoising step {step + 1}/{total}")
            return tensors

        with self._model_lock:
            if self.adapters:
                names = list(settings.adapters)
                self.pipe.set_adapters(names, [settings.lora_scale] * len(names))
            result = self.pipe(
                reference,
                prompt=settings.prompt,
                negative_prompt=settings.negative_prompt,
                num_frames=settings.frames,
                num_inference_steps=settings.steps,
                image_guidance_scale=settings.image_scale,
                text_guidance_scale=settings.text_scale,
                guidance_mode=settings.mode,
                generator=torch.Generator("cpu").manual_seed(settings.seed),
                callback_on_step_end=report,
                output_type="np",
            )
        return unit_to_uint8(result.frames[0])

    def save(self, frames: np.ndarray, fps: int) -> str:
        from .io.video import write_video

        with self._lock:
            self._count += 1
            path = self.output_dir / f"dreamvideo-{self._count:06d}-{random.randrange(16**6):06x}.mp4"
        write_video(frames, path, fps=fps)
        self.clean_outputs()
        return str(path)

    def clean_outputs(self, keep: int = KEEP_OUTPUTS) -> None:
        """Keep the newest `keep` videos: the folder does not grow without bound."""
        with self._lock:
            videos = sorted(self.output_dir.glob("dreamvideo-*.mp4"), key=lambda p: p.stat().st_mtime)
            for old in videos[:-keep]:
                old.unlink(missing_ok=True)

    def cancel(self, session: str) -> None:
        """Ask the session's running generation to stop at its next denoising step."""
        self._cancelled.add(session)


def build_app(pipe, output_dir: str | Path | None = None, adapters: dict[str, Path] | None = None):
    """The Gradio Blocks app for a loaded pipeline (not launched); `adapters` (name -> LoRA
    file or folder) can be picked on the page."""
    import gradio as gr

    maker = VideoMaker(pipe, output_dir, adapters)
    defaults = Settings.model_defaults(pipe)
    with gr.Blocks(title="DreamVideo", delete_cache=CACHE_CLEANUP) as demo:
        ui = _layout(defaults, maker.adapters)
        _wire(ui, maker)
    demo.dreamvideo_output_dir = maker.output_dir
    return demo


def _fail(error: Exception, upload: str | None = None):
    """Show a visitor's mistake in the page as a toast; the server keeps running. Uploads live
    under a temp folder: name the file as the visitor knows it."""
    import gradio as gr

    message = str(error).replace(upload, Path(upload).name) if upload else str(error)
    raise gr.Error(message, print_exception=False) from None


def _guarded(handler):
    """Anything but a visitor's mistake is logged here, not shown: no server paths or exception
    texts reach the page."""
    import gradio as gr

    @functools.wraps(handler)
    def run(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Exception:
            logger.exception("web request failed")
            raise gr.Error(
                "internal error (the server's log has the details)", print_exception=False
            ) from None

    return run


def _caption(clip: "SessionClip") -> str:
    return "  \n".join([clip.settings.describe(), *clip.history])


def _on_upload(path):
    from .io.images import load_image

    if path is None:
        return None
    try:
        return load_image(path)
    except UserError as error:
        _fail(error, path)


# The handlers below are built per app around its VideoMaker. Their parameters are explicit (no
# *args) so that Gradio passes the `gr.Request` (the visitor's session, which Stop cancels), and
# Gradio finds the progress tracker by its default value: B008 is the library's idiom here.
def _generate_handler(maker: "VideoMaker"):
    import gradio as gr

    def on_generate(
        image,
        prompt,
        negative,
        mode,
        s_img,
        s_txt,
        steps,
        frames,
        fps,
        seed,
        random_seed,
        adapters,
        lora_scale,
        gallery,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008
    ):
        sampling = (negative, mode, s_img, s_txt, steps, frames, fps, seed, random_seed, adapters, lora_scale)
        try:
            settings = maker.settings(prompt, *sampling)
            video = maker.generate(image, settings, progress, session=request.session_hash)
            path = maker.save(video, settings.fps)
        except UserError as error:
            _fail(error, image)
        clip = SessionClip(video, path, settings)
        gallery = [*(gallery or []), (path, settings.describe())]
        return path, path, _caption(clip), clip, gallery, gallery, settings.seed

    return _guarded(on_generate)


def _extend_handler(maker: "VideoMaker"):
    import gradio as gr
    from PIL import Image

    def on_extend(clip: SessionClip | None, gallery, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        if clip is None:
            _fail(UserError("generate a video first, then extend it"))
        if len(clip.frames) + clip.settings.frames - 1 > MAX_EXTENDED_FRAMES:
            _fail(
                UserError(
                    f"this clip is as long as the app makes them ({MAX_EXTENDED_FRAMES} frames at most)"
                )
            )
        last = Image.fromarray(clip.frames[-1])
        try:
            video = maker.generate(last, clip.settings, progress, session=request.session_hash)
            frames = np.concatenate([clip.frames, video[1:]])  # the new clip starts on the old last frame
            path = maker.save(frames, clip.settings.fps)
        except UserError as error:
            _fail(error)
        extended = SessionClip(
            frames, path, clip.settings, [*clip.history, f"extended to {len(frames)} frames"]
        )
        gallery = [*(gallery or []), (path, f"{clip.settings.describe()} · extended to {len(frames)} frames")]
        return path, path, _caption(extended), extended, gallery, gallery

    return _guarded(on_extend)


def _compare_handler(maker: "VideoMaker"):
    import gradio as gr

    def on_compare(
        image,
        prompt_a,
        prompt_b,
        negative,
        mode,
        s_img,
        s_txt,
        steps,
        frames,
        fps,
        seed,
        random_seed,
        adapters,
        lora_scale,
        gallery,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008
    ):
        sampling = (negative, mode, s_img, s_txt, steps, frames, fps, seed, random_seed, adapters, lora_scale)
        outputs = []
        try:
            first = maker.settings(prompt_a, *sampling)
            for prompt in (prompt_a, prompt_b):  # same seed: the prompts are the only difference
                settings = Settings(**{**first.__dict__, "prompt": (prompt or "").strip()})
                video = maker.generate(image, settings, progress, session=request.session_hash)
                outputs.append((maker.save(video, settings.fps), settings))
        except UserError as error:
            _fail(error, image)
        gallery = [*(gallery or []), *((p, s.describe()) for p, s in outputs)]
        return outputs[0][0], outputs[1][0], gallery, gallery

    return _guarded(on_compare)


def _layout(defaults: Settings, adapters: list[str]) -> SimpleNamespace:
    """The page's components (inside an open `gr.Blocks`), by name."""
    import gradio as gr

    ui = SimpleNamespace()
    gr.Markdown(
        "# DreamVideo\nImage-to-video with text control: the first frame keeps your image, "
        "the prompt sets the motion. Image guidance raises fidelity, text guidance the action."
    )
    ui.clip_state = gr.State(None)
    ui.gallery_state = gr.State([])
    with gr.Row():
        with gr.Column():
            _input_controls(ui, defaults, adapters)
        with gr.Column():
            ui.video = gr.Video(label="Video", autoplay=True, loop=True, height=320, elem_id="video")
            ui.details = gr.Markdown(elem_id="details")
            ui.download = gr.File(label="Download", elem_id="download")
    with gr.Accordion("Compare two prompts on the same image", open=False):
        with gr.Row():
            ui.prompt_a = gr.Textbox(label="Prompt A", elem_id="prompt-a")
            ui.prompt_b = gr.Textbox(label="Prompt B", elem_id="prompt-b")
        ui.compare = gr.Button("Compare", elem_id="compare")
        with gr.Row():
            ui.video_a = gr.Video(label="A", autoplay=True, loop=True, height=256, elem_id="video-a")
            ui.video_b = gr.Video(label="B", autoplay=True, loop=True, height=256, elem_id="video-b")
    ui.gallery = gr.Gallery(label="This session's videos", columns=6, height=260, elem_id="gallery")
    return ui


def _input_controls(ui: SimpleNamespace, defaults: Settings, adapters: list[str]) -> None:
    """The left column: image, prompts, guidance and sampling settings, buttons, examples."""
    import gradio as gr

    # A File (not an Image) input: Gradio's Image decodes uploads itself, with its own errors;
    # this way every upload goes through the CLI's checks in `load_image`.
    ui.image = gr.File(label="Reference image", file_types=["image"], type="filepath", elem_id="image")
    ui.preview = gr.Image(label="Preview", interactive=False, height=160, elem_id="preview")
    ui.prompt = gr.Textbox(label="Prompt", placeholder="the camera zooms in", elem_id="prompt")
    ui.negative = gr.Textbox(label="Negative prompt", elem_id="negative")
    ui.mode = gr.Radio(list(MODES), value=defaults.mode, label="Guidance mode", elem_id="mode")
    with gr.Row():
        ui.s_img = gr.Slider(
            *LIMITS["image_scale"], value=defaults.image_scale, step=0.1, label="Image guidance"
        )
        ui.s_txt = gr.Slider(
            *LIMITS["text_scale"], value=defaults.text_scale, step=0.1, label="Text guidance"
        )
    with gr.Row():
        ui.steps = gr.Slider(*LIMITS["steps"], value=defaults.steps, step=1, label="Steps", elem_id="steps")
        ui.frames = gr.Slider(
            *LIMITS["frames"], value=defaults.frames, step=1, label="Frames", elem_id="frames"
        )
        ui.fps = gr.Slider(*LIMITS["fps"], value=defaults.fps, step=1, label="FPS")
    with gr.Row():
        ui.seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
        ui.random_seed = gr.Checkbox(value=True, label="Random seed", elem_id="random-seed")
    if adapters:
        with gr.Row():
            ui.adapters = gr.CheckboxGroup(adapters, value=[], label="LoRA adapters", elem_id="adapters")
            ui.lora_scale = gr.Slider(*LIMITS["lora_scale"], value=1.0, step=0.05, label="LoRA scale")
    else:  # the handlers take the same inputs either way
        ui.adapters, ui.lora_scale = gr.State([]), gr.State(1.0)
    with gr.Row():
        ui.generate = gr.Button("Generate", variant="primary", elem_id="generate")
        ui.extend = gr.Button("Extend", elem_id="extend")
        ui.stop = gr.Button("Stop", variant="stop", elem_id="stop")
    examples = [
        [str(EXAMPLES_DIR / name), text]
        for name, text in EXAMPLE_PROMPTS.items()
        if (EXAMPLES_DIR / name).is_file()
    ]
    if examples:
        gr.Examples(examples, inputs=[ui.image, ui.prompt], label="Examples")


def _wire(ui: SimpleNamespace, maker: "VideoMaker") -> None:
    """Events: each button to its handler and its API route."""
    import gradio as gr

    ui.image.change(_guarded(_on_upload), ui.image, ui.preview, api_name=False)
    sampling = [
        ui.negative,
        ui.mode,
        ui.s_img,
        ui.s_txt,
        ui.steps,
        ui.frames,
        ui.fps,
        ui.seed,
        ui.random_seed,
        ui.adapters,
        ui.lora_scale,
    ]
    shown = [ui.video, ui.download, ui.details, ui.clip_state, ui.gallery_state, ui.gallery]
    generating = ui.generate.click(
        _generate_handler(maker),
        [ui.image, ui.prompt, *sampling, ui.gallery_state],
        [*shown, ui.seed],
        api_name="generate",
    )
    extending = ui.extend.click(
        _extend_handler(maker), [ui.clip_state, ui.gallery_state], shown, api_name="extend"
    )
    comparing = ui.compare.click(
        _compare_handler(maker),
        [ui.image, ui.prompt_a, ui.prompt_b, *sampling, ui.gallery_state],
        [ui.video_a, ui.video_b, ui.gallery_state, ui.gallery],
        api_name="compare",
    )

    def on_stop(request: gr.Request):
        maker.cancel(request.session_hash)

    # Stop: queued requests are dropped; a running one ends at its next denoising step.
    ui.stop.click(
        on_stop, None, None, cancels=[generating, extending, comparing], queue=False, api_name="stop"
    )


def launch(
    pipe,
    host: str = "127.0.0.1",
    port: int | None = None,
    concurrency: int = 1,
    queue_size: int = 64,
    max_upload_mb: float = 20,
    block: bool = True,
    adapters: dict[str, Path] | None = None,
):
    """Queue and serve the app; never opens a public share link."""
    demo = build_app(pipe, adapters=adapters)
    demo.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=int(max_upload_mb * 1024 * 1024),
        allowed_paths=[str(demo.dreamvideo_output_dir)],
        prevent_thread_lock=True,
        show_error=False,  # visitors see their own mistakes (gr.Error), never internal errors
        quiet=True,  # Gradio's banner suggests share=True, which this app never uses
    )
    if block:
        print(f"DreamVideo web app on {demo.local_url} (Ctrl+C to stop)", flush=True)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("stopping", flush=True)
        finally:
            demo.close()
    return demo
