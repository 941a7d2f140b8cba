"""Images that are huge, tiny, elongated, animated, 16-bit, CMYK or EXIF-rotated (issue #13): each
has a defined, documented treatment, counted in ImageSet.summary and said in ImageSet.notes."""

from __future__ import annotations

import io

import numpy as np
from format_writers import write_png
from PIL import Image

from audit.data import load_images


def _smooth(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 127 // (h + w))],
                    axis=-1).astype(np.uint8)


def test_tiny_and_elongated_images_are_stretched_to_the_working_size(tmp_path, gray28):
    for i in range(3):
        write_png(tmp_path / f"{i}.png", gray28[0][i])
    write_png(tmp_path / "tiny.png", np.full((1, 1), 200, np.uint8))
    write_png(tmp_path / "long.png", np.tile(np.arange(0, 250, 10, dtype=np.uint8), (3, 80))[:, :2000])
    s = load_images(tmp_path)
    assert s.shape == (28, 28, 1)
    assert (s.images[s.ids.index("tiny.png")] == 200).all()  # a constant image, enlarged
    assert s.summary["upscaled"] == 2 and s.summary["aspect_changed_over_2x"] == 1
    assert "enlarged 2 image(s) smaller than the working size (bilinear)" in s.notes
    assert any("stretched to the working aspect" in n for n in s.notes)


def test_animated_16_bit_cmyk_and_exif_rotated_images(tmp_path, gray28, rgb32):
    frames = [Image.fromarray(rgb32[0]).quantize(64), Image.fromarray(rgb32[1]).quantize(64)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(gray28[0][0, :, :, 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    Image.fromarray(np.pad(gray28[0][1, :, :, 0], 2)).save(tmp_path / "deep_pad.png")  # keeps 32×32 the majority
    Image.fromarray(rgb32[2]).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(rgb32[3]).save(tmp_path / "rotated.jpg", quality=95, subsampling=0, exif=exif.tobytes())
    s = load_images(tmp_path)
    get = {i: s.images[k] for k, i in enumerate(s.ids)}
    assert s.shape == (32, 32, 3)
    np.testing.assert_array_equal(get["anim.gif"], np.asarray(frames[0].convert("RGB")))  # the first frame
    deep = load_images(tmp_path, size=(28, 28)).images[s.ids.index("deep.png")]
    np.testing.assert_array_equal(deep[:, :, 0], gray28[0][0, :, :, 0])  # v·257 / 257: exact
    assert np.abs(get["rotated.jpg"].astype(int) - rgb32[3]).mean() < 4  # stored pixels: not rotated
    assert np.abs(get["rotated.jpg"].astype(int) - np.rot90(rgb32[3], -1)).mean() > 20
    assert np.abs(get["cmyk.jpg"].astype(int) - rgb32[2]).mean() < 8
    for key in ("animated_first_frame", "sixteen_bit_scaled", "cmyk_converted", "exif_orientation_not_applied"):
        assert s.summary[key] == 1, key
    assert any("EXIF orientation; not applied" in n for n in s.notes)


def test_a_huge_jpeg_is_decoded_at_a_dct_scale_and_matches_a_full_decode(tmp_path):
    big = io.BytesIO()
    Image.fromarray(_smooth(512, 512)).save(big, "JPEG", quality=95)
    (tmp_path / "a.jpg").write_bytes(big.getvalue())
    s = load_images(tmp_path, size=(32, 32))
    assert s.summary["jpeg_dct_scaled"] == 1
    full = np.asarray(Image.open(io.BytesIO(big.getvalue())).convert("RGB").resize((32, 32), Image.Resampling.BOX))
    assert np.abs(s.images[0].astype(int) - full).max() <= 4  # DCT scaling ≈ box averaging
    huge = io.BytesIO()
    Image.new("L", (6400, 6400), 90).save(huge, "JPEG")  # 41 Mpx: over max_pixels at full size
    (tmp_path / "b.jpg").write_bytes(huge.getvalue())
    s = load_images(tmp_path, size=(32, 32))
    assert s.ids == ("a.jpg", "b.jpg") and abs(int(s.images[1].mean()) - 90) <= 1  # read at 1/8: 0.64 Mpx
    small_cap = load_images(tmp_path, size=(32, 32), max_pixels=100_000)  # b decodes to 800×800 at best
    assert small_cap.ids == ("a.jpg",)
    assert {u.path: u.reason for u in small_cap.unreadable}["b.jpg"] == "too large (6400×6400 pixels; limit 100000)"


def test_a_png_and_a_jpeg_of_one_image_go_through_the_same_map(tmp_path):
    # a bridge's source x' may be a PNG while its members are JPEGs: both must land on one line,
    # at any working size (fractional factors included: PIL's BOX is not an exact area average)
    rng = np.random.default_rng(0)
    img = np.asarray(Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).resize(
        (640, 480), Image.Resampling.BICUBIC))
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(img).save(tmp_path / "b.jpg", quality=95, subsampling=0)
    for size in ((40, 30), (30, 40), (36, 48), (60, 80)):
        s = load_images(tmp_path, size=size)
        assert np.abs(s.images[0].astype(int) - s.images[1]).max() <= 3, size
        assert s.summary["jpeg_dct_scaled"] == 1
