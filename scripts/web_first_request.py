"""How long a new user of the web app waits: `dreamvideo web` from launch to a page that answers,
then the first and the second "Generate" through the app's API (gradio_client), at the model's
default sampling steps and at the old default of 25 (before the 10-step default; docs/performance.md).

    python scripts/web_first_request.py [--model DIR] [--steps 25 --steps 0] [--out FILE]

`--steps 0` means the model's own default. Each setting gets a fresh server process, so the first
request includes what a first request pays (lazy imports, first calls into PyTorch).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dreamvideo.loading import default_model_dir, read_model_index

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: the server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"error: the server did not answer within {timeout:.0f} s")


def measure(model: str | None, steps: int, image: Path, prompt: str) -> dict:
    from gradio_client import Client, handle_file

    port = free_port()
    command = [sys.executable, "-m", "dreamvideo", "web", "--port", str(port)]
    if model:
        command += ["--model", model]
    started = time.monotonic()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, server)
        up = time.monotonic() - started
        client = Client(url, verbose=False)
        index = read_model_index(model or default_model_dir())
        chosen = steps or index.get("default_num_inference_steps", 25)
        sampling = [
            "",
            "image+text",
            index.get("default_image_guidance_scale", 1.5),
            index.get("default_text_guidance_scale", 5.0),
            chosen,
            index.get("default_num_frames", 8),
            index.get("default_fps", 8),
            0,
            False,
        ]
        requests = []
        for _ in range(2):
            t = time.monotonic()
            client.predict(handle_file(str(image)), prompt, *sampling, api_name="/generate")
            requests.append(round(time.monotonic() - t, 2))
        return {
            "steps": chosen,
            "server_up_seconds": round(up, 2),
            "first_request_seconds": requests[0],
            "second_request_seconds": requests[1],
            "launch_to_first_video_seconds": round(up + requests[0], 2),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--steps", type=int, action="append", help="0: the model's default; repeatable")
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "cat.png")
    parser.add_argument("--prompt", default="the camera zooms in")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    results = [measure(args.model, steps, args.image, args.prompt) for steps in (args.steps or [25, 0])]
    print("| steps | server up (s) | first request (s) | second request (s) | launch to first video (s) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['steps']} | {r['server_up_seconds']} | {r['first_request_seconds']} | "
            f"{r['second_request_seconds']} | {r['launch_to_first_video_seconds']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
