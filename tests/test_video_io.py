"""Video files: mp4 / gif / PNG folder chosen by path, written atomically."""

import os

import av
import numpy as np
import pytest

from dreamvideo.errors import UserError
from dreamvideo.io import video as video_io
from dreamvideo.io.video import check_output_path, read_video, write_video


def _frames(n=6, h=48, w=64):
    # Smooth content: H.264 with 4:2:0 chroma keeps it close to the source.
    y, x = np.mgrid[0:h, 0:w]
    return np.stack(
        [np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 20 * i)], -1) for i in range(n)]
    ).astype(np.uint8)


def test_mp4_decodes_with_right_count_and_size(tmp_path):
    path = write_video(_frames(), tmp_path / "v.mp4", fps=8)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (48, 64, 3)
    assert np.abs(decoded[3].astype(int) - _frames()[3]).mean() < 4


def test_outputs_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        assert (write_video(_frames(), tmp_path / "v.gif").stat().st_mode & 0o777) == 0o644
        assert (write_video(_frames(), tmp_path / "frames").stat().st_mode & 0o777) == 0o755
    finally:
        os.umask(umask)


def test_odd_sizes_are_padded_for_h264(tmp_path):
    assert read_video(write_video(_frames(h=33, w=35), tmp_path / "odd.mp4")).shape == (6, 34, 36, 3)


def test_gif_and_png_folder(tmp_path):
    gif = read_video(write_video(_frames(), tmp_path / "v.gif", fps=10))
    assert gif.shape == (6, 48, 64, 3)
    folder = write_video(_frames(), tmp_path / "frames", fps=10)
    assert sorted(os.listdir(folder))[0] == "frame_0000.png"
    np.testing.assert_array_equal(read_video(folder), _frames())


def test_kinds_and_bad_paths(tmp_path):
    assert check_output_path(tmp_path / "a.MP4") == "mp4"
    assert check_output_path(f"{tmp_path}/frames/") == "frames"
    with pytest.raises(UserError, match="unknown output extension"):
        check_output_path(tmp_path / "a.avi")
    with pytest.raises(UserError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.mp4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        check_output_path(tmp_path / "file" / "a.mp4")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.png").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        check_output_path(tmp_path / "full")
    with pytest.raises(UserError, match="is a directory"):
        (tmp_path / "dir.mp4").mkdir()
        check_output_path(tmp_path / "dir.mp4")


def test_unwritable_directory(tmp_path, monkeypatch):
    # Root ignores permission bits, so the check is exercised through os.access.
    monkeypatch.setattr(video_io.os, "access", lambda path, mode: False)
    with pytest.raises(UserError, match="not writable"):
        check_output_path(tmp_path / "a.mp4")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(video_io, "_write_mp4", broken)
    with pytest.raises(RuntimeError):
        write_video(_frames(), tmp_path / "v.mp4")
    assert os.listdir(tmp_path) == []


def test_existing_file_replaced_atomically(tmp_path):
    target = tmp_path / "v.gif"
    target.write_bytes(b"old")
    write_video(_frames(), target)
    assert target.read_bytes()[:3] == b"GIF" and os.listdir(tmp_path) == ["v.gif"]
