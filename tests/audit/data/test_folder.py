"""The folder reader: formats by content, hostile files, channel/alpha/size policies, symlinks,
read-only access."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from audit.data import load_images, load_labeled_folder
from audit.errors import EmptyDatasetError, InvalidParameterError

from format_writers import write_png


def _reasons(s) -> dict[str, str]:
    return {u.path: u.reason for u in s.unreadable}


def test_png_folder_round_trips_with_sorted_relative_ids(tmp_path, gray28):
    images, _ = gray28
    for i, im in enumerate(images):
        write_png(tmp_path / f"sub{i % 2}" / f"{i:02d}.png", im)
    s = load_images(tmp_path)
    assert s.ids == tuple(sorted(f"sub{i % 2}/{i:02d}.png" for i in range(len(images))))
    order = [int(i.split("/")[1][:2]) for i in s.ids]
    np.testing.assert_array_equal(s.images, images[order])
    assert s.labels is None and s.unreadable == () and s.notes == ()


def test_every_format_is_detected_by_content_not_extension(tmp_path, rgb32):
    im = rgb32[0]
    Image.fromarray(im).save(tmp_path / "a.jpg", format="PNG")  # a PNG named .jpg
    Image.fromarray(im).save(tmp_path / "b.bmp", format="BMP")
    Image.fromarray(im).save(tmp_path / "c.webp", format="WEBP", lossless=True)
    Image.fromarray(im).save(tmp_path / "d.png", format="JPEG", quality=95, subsampling=0)
    frames = [Image.fromarray(im).quantize(256), Image.fromarray(255 - im).quantize(256)]
    frames[0].save(tmp_path / "e.gif", save_all=True, append_images=frames[1:])
    s = load_images(tmp_path)
    assert s.ids == ("a.jpg", "b.bmp", "c.webp", "d.png", "e.gif") and s.shape == (32, 32, 3)
    for k in range(3):
        np.testing.assert_array_equal(s.images[k], im)
    assert np.abs(s.images[3].astype(int) - im).mean() < 4  # JPEG is lossy
    np.testing.assert_array_equal(s.images[4], np.asarray(frames[0].convert("RGB")))  # first frame


def _png_header(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(
        b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_hostile_files_are_listed_with_reasons_not_fatal(tmp_path, gray28):
    images, _ = gray28
    write_png(tmp_path / "good.png", images[0])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, I am not an image\n")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(buf, "PNG")
    (tmp_path / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    jbuf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)).save(jbuf, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(jbuf.getvalue()[: len(jbuf.getvalue()) // 2])
    (tmp_path / "headonly.png").write_bytes(buf.getvalue()[:20])
    (tmp_path / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    Image.fromarray(np.full((4, 4), 1.5, np.float32)).save(tmp_path / "float.tif")  # mode F: no stated range
    s = load_images(tmp_path)
    assert s.ids == ("good.png",)
    r = _reasons(s)
    assert r["empty.png"] == "empty file"
    assert r["text.png"] == "not an image"
    assert r["truncated.png"] == "truncated" and r["truncated.jpg"] == "truncated"
    assert r["headonly.png"].startswith("truncated")
    assert r["bomb.png"].startswith("too large")
    assert r["float.tif"] == "unsupported mode F"


def test_max_pixels_refuses_before_decoding(tmp_path, gray28):
    write_png(tmp_path / "a.png", gray28[0][0])
    write_png(tmp_path / "big.png", np.zeros((100, 100), np.uint8))
    s = load_images(tmp_path, max_pixels=28 * 28)
    assert s.ids == ("a.png",) and _reasons(s)["big.png"].startswith("too large")
    with pytest.raises(InvalidParameterError, match="'max_pixels' parameter of load_images"):
        load_images(tmp_path, max_pixels=0)


def test_all_gray_stays_one_channel_and_gray_palette_counts_as_gray(tmp_path, gray28):
    im = gray28[0][0, :, :, 0]
    Image.fromarray(im).save(tmp_path / "l.png")
    Image.fromarray(im).convert("P").save(tmp_path / "p.png")  # a palette of grays
    Image.fromarray(im > 128).save(tmp_path / "one.png")  # mode '1'
    s = load_images(tmp_path)
    assert s.shape == (28, 28, 1)
    np.testing.assert_array_equal(s.images[0, :, :, 0], im)
    np.testing.assert_array_equal(s.images[2, :, :, 0], im)
    assert set(np.unique(s.images[1])) <= {0, 255}


def test_one_colour_image_makes_the_set_rgb_and_alpha_composites_over_gray(tmp_path, gray28, rgb32):
    g = gray28[0][0, :4, :4, 0]
    rgb = rgb32[0, :4, :4]
    alpha = np.full((4, 4), 128, np.uint8)
    alpha[0, 0] = 0
    Image.fromarray(g).save(tmp_path / "a_gray.png")
    Image.fromarray(rgb).save(tmp_path / "b_rgb.png")
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(tmp_path / "c_rgba.png")
    Image.fromarray(np.dstack([g, alpha]), mode="LA").save(tmp_path / "d_la.png")
    s = load_images(tmp_path)
    assert s.shape == (4, 4, 3)
    np.testing.assert_array_equal(s.images[0], np.repeat(g[..., None], 3, axis=2))
    np.testing.assert_array_equal(s.images[1], rgb)
    # c·α + 128·(1-α), rounded (premultiplied by PIL first, so within 1 of the exact value)
    expect = rgb.astype(float) * alpha[..., None] / 255 + 128 * (1 - alpha[..., None] / 255)
    assert np.abs(s.images[2].astype(float) - expect).max() <= 1.0
    assert (s.images[2, 0, 0] == 128).all() and (s.images[3, 0, 0] == 128).all()  # transparent: the background
    assert any("composited alpha over gray 128 in 2" in n for n in s.notes)
    assert s.summary["alpha_composited"] == 2 and s.summary["modes"] == {"L": 1, "RGB": 1, "RGBA": 1, "LA": 1}
    assert any("replicated 2 gray" in n for n in s.notes)
    forced = load_images(tmp_path, channels=1)
    assert forced.shape == (4, 4, 1)


def test_mixed_sizes_resize_to_the_majority_with_a_note(tmp_path, gray28):
    images = gray28[0]
    for i in range(3):
        write_png(tmp_path / f"{i}.png", images[i])
    write_png(tmp_path / "z_small.png", images[3, ::2, ::2])
    s = load_images(tmp_path)
    assert s.shape == (28, 28, 1)
    np.testing.assert_array_equal(s.images[:3], images[:3])
    assert "resized 1 of 4 images to 28×28" in s.notes
    small = load_images(tmp_path, size=(14, 14))
    assert small.shape == (14, 14, 1)
    np.testing.assert_array_equal(small.images[3], images[3, ::2, ::2])  # already 14×14: untouched


def test_size_ties_go_to_the_larger_image(tmp_path, gray28):
    write_png(tmp_path / "a.png", gray28[0][0])
    write_png(tmp_path / "b.png", gray28[0][1, ::2, ::2])
    assert load_images(tmp_path).shape == (28, 28, 1)


def test_resize_is_linear_so_interpolation_chains_survive(tmp_path, gray28):
    a, b = gray28[0][0, :, :, 0].astype(float), gray28[0][1, :, :, 0].astype(float)
    mid = np.rint((a + b) / 2).astype(np.uint8)
    for name, im in (("a", a), ("b", b), ("m", mid)):
        write_png(tmp_path / f"{name}.png", im.astype(np.uint8))
    s = load_images(tmp_path, size=(20, 20)).images.astype(float)
    assert np.abs(s[2] - (s[0] + s[1]) / 2).max() <= 1.5  # rounding only


def test_symlink_loop_terminates_and_file_links_are_read(tmp_path, gray28):
    write_png(tmp_path / "d" / "x.png", gray28[0][0])
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    os.symlink(tmp_path, tmp_path / "d" / "up")
    os.symlink(tmp_path / "d" / "x.png", tmp_path / "link.png")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "broken.png")
    s = load_images(tmp_path)
    assert s.ids == ("d/x.png", "link.png")
    assert _reasons(s)["broken.png"] == "broken symlink"
    assert any("did not follow 2 directory symlink" in n for n in s.notes)


def test_hidden_entries_are_skipped_unless_asked(tmp_path, gray28):
    write_png(tmp_path / "a.png", gray28[0][0])
    write_png(tmp_path / ".hidden.png", gray28[0][1])
    write_png(tmp_path / ".cache" / "b.png", gray28[0][2])
    s = load_images(tmp_path)
    assert s.ids == ("a.png",) and any("skipped 2 hidden" in n for n in s.notes)
    assert load_images(tmp_path, include_hidden=True).ids == (".cache/b.png", ".hidden.png", "a.png")


def test_fifo_is_not_read_and_does_not_hang(tmp_path, gray28):
    write_png(tmp_path / "a.png", gray28[0][0])
    os.mkfifo(tmp_path / "pipe.png")
    s = load_images(tmp_path)
    assert s.ids == ("a.png",) and _reasons(s)["pipe.png"] == "not a regular file (a FIFO)"


def test_the_folder_is_not_modified(tmp_path, gray28):
    for i, im in enumerate(gray28[0][:5]):
        write_png(tmp_path / f"{i}.png", im)
    (tmp_path / "junk.txt").write_text("x")

    def snapshot():
        return sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.rglob("*"))

    before = snapshot()
    load_images(tmp_path)
    assert snapshot() == before


def test_progress_reports_done_and_total(tmp_path, gray28):
    for i, im in enumerate(gray28[0][:3]):
        write_png(tmp_path / f"{i}.png", im)
    calls = []
    load_images(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)


def test_no_readable_image_raises_with_count_and_reasons(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.png").write_text("nope")
    with pytest.raises(EmptyDatasetError, match=r"2 unreadable.*a.png: empty file"):
        load_images(tmp_path)
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(EmptyDatasetError, match="no files"):
        load_images(empty)


def test_labeled_folder_gives_sorted_class_names(tmp_path, gray28):
    images, _ = gray28
    for i, name in enumerate(["zebra", "ant", "ant", "moth"]):
        write_png(tmp_path / name / f"{i}.png", images[i])
    write_png(tmp_path / "stray.png", images[5])
    s = load_labeled_folder(tmp_path)
    assert s.class_names == ("ant", "moth", "zebra")
    assert s.ids == ("ant/1.png", "ant/2.png", "moth/3.png", "zebra/0.png")
    np.testing.assert_array_equal(s.labels, [0, 0, 1, 2])
    assert _reasons(s)["stray.png"] == "not inside a class folder"


def test_a_file_vanishing_mid_read_is_listed(tmp_path, gray28):
    write_png(tmp_path / "a.png", gray28[0][0])
    write_png(tmp_path / "b.png", gray28[0][1])

    def delete_b_once_listed(done: int, total: int) -> None:
        if done == 0:  # called after the walk, before any decoding
            (tmp_path / "b.png").unlink()

    s = load_images(tmp_path, progress=delete_b_once_listed)
    assert s.ids == ("a.png",) and _reasons(s)["b.png"] == "vanished during read"


def test_undecodable_file_name_is_read_with_a_round_tripping_id(tmp_path, gray28):
    write_png(tmp_path / "a.png", gray28[0][0])
    write_png(tmp_path / "b.png", gray28[0][1])
    raw = os.path.join(os.fsencode(tmp_path), b"\xff\xfe.png")
    with open(raw, "wb") as fh:
        fh.write((tmp_path / "b.png").read_bytes())
    s = load_images(tmp_path)
    assert s.unreadable == () and len(s) == 3
    odd = s.ids[2]
    assert os.fsencode(odd) == b"\xff\xfe.png"  # the id gives back the exact bytes of the name
    assert os.path.exists(os.path.join(os.fsencode(tmp_path), os.fsencode(odd)))
    np.testing.assert_array_equal(s.images[2], s.images[1])
    assert s.summary["non_utf8_names"] == 1 and any("not valid UTF-8" in n for n in s.notes)


def test_cmyk_jpeg_is_read_as_colour(tmp_path, rgb32):
    Image.fromarray(rgb32[0]).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    s = load_images(tmp_path)
    assert s.shape == (32, 32, 3)


def test_numeric_class_folders_keep_their_numbers(tmp_path, gray28):
    for i, name in enumerate(["0", "2", "10", "1"]):
        write_png(tmp_path / name / f"{i}.png", gray28[0][i])
    s = load_labeled_folder(tmp_path)
    assert s.class_names == ("0", "1", "2", "10")
    assert dict(zip(s.ids, s.labels.tolist())) == {"0/0.png": 0, "1/3.png": 1, "10/2.png": 3, "2/1.png": 2}


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("side", [1, 28, 300])  # 300×300 RGB is 270 kB: more than tobytes' 64 KiB block
def test_raw_bytes_equals_tobytes(mode, side):
    from audit.data.readers.decode import raw_bytes

    rng = np.random.default_rng(side)
    a = rng.integers(0, 256, (side, side + 3, 3 if mode == "RGB" else 1), dtype=np.uint8)
    im = Image.fromarray(a[:, :, 0] if mode == "L" else a, mode=mode)
    assert raw_bytes(im) == im.tobytes() == a.tobytes()
