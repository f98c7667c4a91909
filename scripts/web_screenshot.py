"""The README's web screenshot: the shipped model in `dreamvideo web`, driven by headless Chromium.

    python scripts/web_screenshot.py [--model DIR] [--out docs/images/web-ui.png]

Uploads examples/cat.png, asks for "the camera zooms in" with seed 0, waits until the browser
can play the video, and saves the page. Needs Debian's chromium and chromium-driver
(`bash scripts/install_browser.sh`); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
from pathlib import Path

from dreamvideo.pipeline import load_pipeline
from dreamvideo.web import launch

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
    )
    for arg in (*flags, f"--user-data-dir={profile}", "--window-size=1400,1300"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="DreamVideo folder (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "web-ui.png")
    args = parser.parse_args()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    demo = launch(load_pipeline(args.model), port=_free_port(), block=False)
    profile = tempfile.mkdtemp(prefix="dreamvideo-chromium-")
    driver = _browser(profile)
    try:
        driver.get(demo.local_url)
        wait = WebDriverWait(driver, 180, poll_frequency=0.2).until
        find = driver.find_elements
        wait(lambda d: find(By.CSS_SELECTOR, "#generate"))
        find(By.CSS_SELECTOR, "#image input[type=file]")[0].send_keys(str(REPO / "examples" / "cat.png"))
        wait(lambda d: find(By.CSS_SELECTOR, "#preview img"))
        find(By.CSS_SELECTOR, "#prompt textarea")[0].send_keys("the camera zooms in")
        find(By.CSS_SELECTOR, "#random-seed input")[0].click()  # seed 0, reproducible
        find(By.CSS_SELECTOR, "#generate")[0].click()
        wait(lambda d: find(By.CSS_SELECTOR, "#video video[src]"))
        wait(lambda d: d.execute_script("return document.querySelector('#video video').readyState") >= 2)
        rewind = "const v = document.querySelector('#video video'); v.pause(); v.currentTime = 0;"
        driver.execute_script(rewind)  # the first frame, the one that keeps the image
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
        print(f"wrote {args.out}")
    finally:
        driver.quit()
        demo.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
