"""Reference-image loading: every bad input is a clear UserError; odd modes are converted."""

import numpy as np
import pytest
from PIL import Image

from dreamvideo.errors import UserError
from dreamvideo.io.images import MAX_PIXELS, fit_image, image_to_tensor, load_image, tensor_to_images


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_missing_directory_empty_and_non_image(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(UserError, match="directory"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(UserError, match="not an image"):
        load_image(tmp_path / "notes.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(tmp_path, fmt):
    rng = np.random.default_rng(0)
    path = _save(
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), tmp_path / "x", format=fmt
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_image(path)


def test_tiny_image_refused(tmp_path):
    with pytest.raises(UserError, match="1x1"):
        load_image(_save(Image.new("RGB", (1, 1)), tmp_path / "dot.png"))


def test_huge_png_refused_without_decoding(tmp_path):
    path = _save(Image.new("1", (20000, 20000)), tmp_path / "huge.png")
    with pytest.raises(UserError, match="too large to decode safely"):
        load_image(path)
    path = _save(Image.new("1", (9000, 9000)), tmp_path / "large.png")  # 81 MP: over our own limit
    with pytest.raises(UserError, match="9000x9000"):
        load_image(path)


def test_formats_outside_the_allow_list_are_refused(tmp_path):
    """An EPS file (even named .png) is never handed to Ghostscript; nor are other exotic formats."""
    eps = tmp_path / "drawing.png"
    eps.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n0 0 moveto 16 16 lineto stroke\n")
    with pytest.raises(UserError, match="not one of PNG, JPEG"):
        load_image(eps)
    pcx = _save(Image.new("RGB", (16, 16)), tmp_path / "image.pcx")
    with pytest.raises(UserError, match="not one of"):
        load_image(pcx)
    for suffix in ("png", "jpg", "webp", "gif", "bmp", "tif"):
        assert load_image(
            _save(Image.new("RGB", (16, 16), (9, 99, 199)), tmp_path / f"ok.{suffix}")
        ).size == (16, 16)


def test_bomb_checks_are_thread_safe(tmp_path):
    """Loads in threads (the web app's previews beside generations) never switch Pillow's
    process-wide decompression-bomb guard off, and every bomb is refused."""
    import threading

    bomb = _save(Image.new("1", (20000, 20000)), tmp_path / "bomb.png")
    fine = _save(Image.new("RGB", (64, 64), (1, 2, 3)), tmp_path / "fine.png")
    limit = Image.MAX_IMAGE_PIXELS
    seen, outcomes = set(), []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.add(Image.MAX_IMAGE_PIXELS)

    def load(path):
        for _ in range(5):
            try:
                load_image(path)
                outcomes.append((path, "ok"))
            except UserError:
                outcomes.append((path, "refused"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=load, args=(p,)) for p in (bomb, fine) * 4]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    watcher.join()
    assert seen == {limit} and limit == Image.MAX_IMAGE_PIXELS
    assert {o for p, o in outcomes if p == bomb} == {"refused"}
    assert {o for p, o in outcomes if p == fine} == {"ok"}


def test_huge_jpeg_downscaled_while_decoding(tmp_path):
    side = 9000  # 81 MP: over the limit, decoded at reduced scale
    assert side * side > MAX_PIXELS
    path = _save(Image.new("L", (side, side), 128), tmp_path / "huge.jpg", quality=50)
    image = load_image(path, target_size=(64, 64))
    assert image.mode == "RGB" and max(image.size) <= side // 2


@pytest.mark.parametrize(
    ("mode", "color"),
    [("RGBA", (255, 0, 0, 128)), ("LA", (100, 0)), ("P", 3), ("CMYK", (0, 255, 0, 0)), ("L", 77), ("1", 1)],
)
def test_modes_converted_to_rgb(tmp_path, mode, color):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    path = _save(Image.new(mode, (32, 24), color), tmp_path / f"m.{fmt.lower()}", format=fmt)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (32, 24)


def test_alpha_composited_over_white(tmp_path):
    path = _save(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), tmp_path / "clear.png")
    assert np.asarray(load_image(path)).min() == 255


def test_16_bit_scaled_not_clipped(tmp_path):
    array = np.full((16, 16), 32768, dtype=np.uint16)
    path = _save(Image.fromarray(array), tmp_path / "deep.png")
    value = np.asarray(load_image(path))[0, 0, 0]
    assert 120 <= value <= 135  # half of full scale, not clipped to white


def test_animated_gif_uses_first_frame(tmp_path, caplog):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with caplog.at_level("WARNING"):
        image = load_image(path)
    assert np.asarray(image)[0, 0, 0] > 200 and np.asarray(image)[0, 0, 2] < 50
    assert "animated" in caplog.text


def test_exif_orientation_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    assert load_image(path).size == (20, 40)


def test_fit_crop_pad_and_tensor_round_trip():
    image = Image.new("RGB", (100, 50), (10, 20, 30))
    assert fit_image(image, 64, 64).size == (64, 64)
    padded = np.asarray(fit_image(image, 64, 64, "pad"))
    assert padded[0, 0].tolist() == [0, 0, 0] and padded[32, 32].tolist() == [10, 20, 30]
    tensor = image_to_tensor(image)
    assert tensor.shape == (1, 3, 50, 100) and tensor.min() >= -1 and tensor.max() <= 1
    np.testing.assert_array_equal(tensor_to_images(tensor)[0], np.asarray(image))
