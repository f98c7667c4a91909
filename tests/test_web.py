"""The Gradio app: settings checks in Python, then the page in real headless Chromium, then load
through gradio_client. Screenshots go to $DREAMVIDEO_TEST_ARTIFACTS (default test-artifacts/)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
import torch

gr = pytest.importorskip("gradio")

from dreamvideo.errors import UserError  # noqa: E402
from dreamvideo.testing import tiny_dreamvideo_pipeline  # noqa: E402
from dreamvideo.web import VideoMaker, launch  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("DREAMVIDEO_TEST_ARTIFACTS", "test-artifacts"))
FRAMES = 6
UPLOAD_LIMIT_MB = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame_count(path: str | Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def web_pipe():
    return tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True, default_num_frames=FRAMES)


@pytest.fixture(scope="module")
def server(web_pipe):
    demo = launch(web_pipe, port=free_port(), max_upload_mb=UPLOAD_LIMIT_MB, block=False)
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.local_url, verbose=False)


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "Debian's chromium and chromium-driver are needed (.ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch a browser or driver
    profile = tempfile.mkdtemp(prefix="dreamvideo-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1700",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


def set_number(driver, elem_id: str, value: int) -> None:
    field = css(driver, f"#{elem_id} input[type=number]")[0]
    field.clear()
    field.send_keys(str(value))


# ---------------------------------------------------------------- settings (no server)
def test_settings_are_checked_like_the_cli(web_pipe, tmp_path):
    gen = VideoMaker(web_pipe, tmp_path)
    ok = dict(prompt=" zoom in ", negative_prompt="", mode="image", image_scale=1.5, text_scale=5.0)
    sampling = dict(steps=3, frames=4, fps=8, seed=7, random_seed=False)
    settings = gen.settings(**ok, **sampling)
    assert (settings.prompt, settings.seed, settings.steps) == ("zoom in", 7, 3)
    assert 0 <= gen.settings(**ok, **{**sampling, "random_seed": True}).seed < 2**31
    for bad in (
        {"steps": 0},
        {"steps": 2.5},
        {"frames": 0},
        {"fps": 0},
        {"seed": -1},
        {"seed": 1.5},
    ):
        with pytest.raises(UserError):
            gen.settings(**ok, **{**sampling, **bad})
    with pytest.raises(UserError, match="mode"):
        gen.settings(**{**ok, "mode": "video"}, **sampling)
    with pytest.raises(UserError, match=r"image (scale|guidance)"):
        gen.settings(**{**ok, "image_scale": -1}, **sampling)
    with pytest.raises(UserError, match="upload an image"):
        gen.generate(None, settings)
    # The page's limits hold on the server too (a direct API call skips the sliders).
    for bad, message in (
        ({"steps": 101}, "steps must be from 1 to 100"),
        ({"frames": 65}, "frames must be from 2 to 64"),
        ({"frames": 512}, "frames must be from 2 to 64"),
        ({"fps": 31}, "fps must be from 1 to 30"),
        ({"steps": float("nan")}, "steps must be a whole number"),
    ):
        with pytest.raises(UserError, match=message):
            gen.settings(**ok, **{**sampling, **bad})
    for scale, value in (("image_scale", 10.5), ("text_scale", 1e38), ("text_scale", float("inf"))):
        with pytest.raises(UserError, match=scale.replace("_", " ")):
            gen.settings(**{**ok, scale: value}, **sampling)


def test_lora_adapters_from_the_launch_folder_switch_on_per_request(tmp_path, photo):
    """--lora-dir: every adapter loaded once, off unless a request picks it, at its scale."""
    pytest.importorskip("peft")
    from dreamvideo import lora

    pipe = tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True, default_num_frames=4)
    params = lora.add_adapter(pipe, lora.LoraSettings(rank=4), "wave")
    with torch.no_grad():
        for p in params:
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    record = {"base_fingerprint": lora.base_fingerprint(pipe)}
    lora.save_adapter(
        tmp_path / "wave", lora.adapter_state_dict(pipe, "wave"), lora.LoraSettings(rank=4), record
    )
    pipe.unload_lora_weights()
    plain = VideoMaker(tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True), tmp_path / "a")
    gen = VideoMaker(pipe, tmp_path / "out", adapters={"wave": tmp_path / "wave"})
    args = ("x", "", "image+text", 1.5, 5.0, 2, 4, 8, 3, False)
    off, on = gen.settings(*args), gen.settings(*args, ["wave"], 1.0)
    assert "LoRA wave ×1" in on.describe() and "LoRA" not in off.describe()
    base = plain.generate(photo, plain.settings(*args))
    first_off = gen.generate(photo, off)
    assert np.array_equal(first_off, base)
    assert not np.array_equal(gen.generate(photo, on), base)
    assert np.array_equal(gen.generate(photo, off), base)  # off again after a request used it
    with pytest.raises(UserError, match="no LoRA adapter named 'other'"):
        gen.settings(*args, ["other"], 1.0)
    with pytest.raises(UserError, match="lora scale must be from 0 to 2"):
        gen.settings(*args, ["wave"], 3.0)


def test_stop_ends_a_running_generation_at_the_next_step(web_pipe, tmp_path, photo):
    from dreamvideo.web import Cancelled

    gen = VideoMaker(web_pipe, tmp_path)
    settings = gen.settings("x", "", "image", 1.5, 5.0, 5, 4, 8, 0, False)
    steps = []

    def progress(fraction, desc=""):
        steps.append(desc)
        gen.cancel("visitor")  # pressed while the first step runs

    with pytest.raises(Cancelled):
        gen.generate(photo, settings, progress, session="visitor")
    assert len(steps) == 1
    gen.cancel("visitor")  # a Stop pressed before a request does not end the next one
    assert gen.generate(photo, settings, session="visitor").shape[0] == 4


def test_output_folder_keeps_the_newest_videos(web_pipe, tmp_path):
    gen = VideoMaker(web_pipe, tmp_path)
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    paths = [gen.save(frames, 8) for _ in range(5)]
    gen.clean_outputs(keep=2)
    assert sorted(Path(p).name for p in tmp_path.iterdir()) == sorted(Path(p).name for p in paths[-2:])


def test_binds_loopback_and_never_shares(server):
    assert server.server_name == "127.0.0.1"
    assert server.share is False
    assert server.local_url.startswith("http://127.0.0.1:")


def test_upload_size_is_limited(server):
    boundary = "dreamvideo"
    payload = b"\0" * (UPLOAD_LIMIT_MB * 1024 * 1024 + 1024)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        server.local_url + "gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=30)
    assert error.value.code == 413


# ---------------------------------------------------------------- the page in Chromium
def test_generate_play_and_download_in_browser(server, browser, photo, tmp_path):
    browser.get(server.local_url)
    wait(browser, lambda d: css(d, "#generate"), 60)
    css(browser, "#image input[type=file]")[0].send_keys(str(Path(photo).resolve()))
    wait(browser, lambda d: css(d, "#preview img"), 30)
    css(browser, "#prompt textarea")[0].send_keys("the camera zooms in")
    set_number(browser, "steps", 3)
    set_number(browser, "frames", FRAMES)
    css(browser, "#generate")[0].click()

    wait(browser, lambda d: css(d, "#video video[src]"))
    ready = "return document.querySelector('#video video').readyState"
    wait(browser, lambda d: d.execute_script(ready) >= 2, 30)  # the browser decoded it: playable
    assert browser.execute_script("return document.querySelector('#video video').duration") > 0
    link = wait(browser, lambda d: css(d, "#download a[download]"), 30)[0]
    assert "zooms in" in css(browser, "#details")[0].text
    screenshot(browser, "web-generated.png")

    downloaded = tmp_path / "downloaded.mp4"
    with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
        downloaded.write_bytes(response.read())
    assert frame_count(downloaded) == FRAMES


def test_bad_upload_shows_the_error_in_the_page(server, browser, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_text("this is not a picture")
    browser.get(server.local_url)
    wait(browser, lambda d: css(d, "#generate"), 60)
    css(browser, "#image input[type=file]")[0].send_keys(str(bad))
    toast = wait(browser, lambda d: [t for t in css(d, ".toast-body") if "not an image" in t.text], 30)
    assert "holiday.png" in toast[0].text and "/tmp/" not in toast[0].text
    screenshot(browser, "web-bad-upload.png")
    assert not css(browser, "#video video[src]")


# ---------------------------------------------------------------- API and load
def test_extend_and_compare_through_the_api(client, photo):
    from gradio_client import handle_file

    sampling = ["", "image+text", 1.5, 5.0, 2, FRAMES, 8, 3, False]
    video, _, details, *_ = client.predict(
        handle_file(photo), "the camera pans left", *sampling, api_name="/generate"
    )
    assert frame_count(video["video"]) == FRAMES and "seed 3" in details
    # gradio_client keeps the session's state between calls, as a browser tab does.
    video, _, details, *_ = client.predict(api_name="/extend")
    assert frame_count(video["video"]) == 2 * FRAMES - 1 and "extended" in details
    a, b, gallery = client.predict(
        handle_file(photo), "the camera zooms in", "the camera zooms out", *sampling, api_name="/compare"
    )
    assert frame_count(a["video"]) == frame_count(b["video"]) == FRAMES
    assert len(gallery) == 4  # generate, extend, and the two compared clips


def test_out_of_range_api_requests_get_a_clean_refusal(client, photo, monkeypatch):
    """What the page's sliders prevent, a direct API call may still send: the server refuses it
    in one line, and an internal error never shows the server's paths or exception text."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    import dreamvideo.web

    # Gradio 5.50's own slider check answers first; ours (web.LIMITS) stands behind it.
    for sampling, message in (
        (
            ["", "image+text", 1.5, 5.0, 1000, FRAMES, 8, 3, False],
            "steps must be from 1 to 100|maximum value 100",
        ),
        (["", "image+text", 1.5, 5.0, 2, 512, 8, 3, False], "frames must be from 2 to 64|maximum value 64"),
        (
            ["", "image+text", 1e38, 5.0, 2, FRAMES, 8, 3, False],
            "image scale must be from 0 to 10|maximum value 10",
        ),
    ):
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(photo), "pans left", *sampling, api_name="/generate")
    # "Extend" stops at the app's longest clip.
    monkeypatch.setattr(dreamvideo.web, "MAX_EXTENDED_FRAMES", 2 * FRAMES - 1)
    sampling = ["", "image+text", 1.5, 5.0, 2, FRAMES, 8, 3, False]
    client.predict(handle_file(photo), "pans left", *sampling, api_name="/generate")
    client.predict(api_name="/extend")
    with pytest.raises(AppError, match="as long as the app makes them"):
        client.predict(api_name="/extend")

    def broken(*args, **kwargs):
        raise RuntimeError("/srv/secret/model.bin: internal failure")

    monkeypatch.setattr(VideoMaker, "generate", broken)
    with pytest.raises(AppError) as error:
        client.predict(handle_file(photo), "pans left", *sampling, api_name="/generate")
    assert "internal error" in str(error.value) and "/srv/secret" not in str(error.value)


def test_ten_concurrent_requests_all_complete(server, photo):
    from gradio_client import Client, handle_file

    def one(i: int) -> int:
        client = Client(server.local_url, verbose=False)
        video, *_ = client.predict(
            handle_file(photo), f"the camera pans left {i}", "", "image+text", 1.5, 5.0, 2, FRAMES, 8, i,
            False, api_name="/generate",
        )  # fmt: skip
        return frame_count(video["video"])

    start = time.perf_counter()
    with ThreadPoolExecutor(10) as pool:
        counts = list(pool.map(one, range(10)))
    assert counts == [FRAMES] * 10, counts
    assert time.perf_counter() - start < 300


# ---------------------------------------------------------------- the `dreamvideo web` command
@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "port must be from 1 to 65535"),
        (["--concurrency", "0"], "--concurrency and --queue-size"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--model", "no/such/folder"], "no/such/folder"),
        (["--lora-dir", "no/such/adapters"], "LoRA folder not found"),
    ],
)
def test_web_command_refuses_bad_options(args, message, capsys):
    from dreamvideo.cli import main

    assert main(["web", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_web_command_without_gradio_names_the_install(capsys, monkeypatch):
    """After the README's main install (no [web] extra): one line with the command, exit 2."""
    import importlib.util

    from dreamvideo.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a)
    )
    assert main(["web"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e '.[web]'" in err
