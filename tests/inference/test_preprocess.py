"""DIGITS' Classify One steps, one at a time, on small synthetic images (non-square sizes).

Each expected value is built from the steps as digits.md 5.1 lists them: load, resize to the
dataset size with its resize mode, resize to the input (caffe.io.resize_image), CHW, RGB -> BGR,
minus the mean (resized) or the mean pixel, times scale."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inference import InferenceError, ModelInfo, Preprocessor, preprocess
from inference.resize import caffe_resize
from lmdb_builder import resize_image


def info(channels=3, size=(10, 14), dataset=None, mode="squash", mean_type="none", mean=None,
         pixel=(), scale=1.0):
    return ModelInfo("data", "prob", channels, *size, labels=["a", "b"],
                     channel_order="BGR" if channels == 3 else "GRAY", resize_mode=mode,
                     dataset_size=dataset, mean_type=mean_type, mean_pixel=tuple(pixel),
                     mean_image=mean, scale=scale)


def test_colour_image_for_a_gray_model_uses_pil_luma(rng):
    rgb = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    out = Preprocessor(info(channels=1))(rgb)
    luma = rgb @ np.array([0.299, 0.587, 0.114])      # ITU-R 601-2, PIL rounds to integers
    assert out.shape == (1, 10, 14) and out.dtype == np.float32
    assert np.abs(out[0] - luma).max() <= 1


def test_colour_channels_come_out_bgr(rng):
    rgb = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    out = Preprocessor(info())(Image.fromarray(rgb))
    np.testing.assert_array_equal(out, rgb.transpose(2, 0, 1)[::-1])


def test_gray_image_for_a_colour_model_is_repeated(rng):
    gray = rng.integers(0, 256, (10, 14), dtype=np.uint8)
    out = Preprocessor(info())(gray)
    for c in range(3):
        np.testing.assert_array_equal(out[c], gray)


def test_alpha_is_pasted_on_white_and_files_and_bytes_work(tmp_path):
    rgba = np.zeros((10, 14, 4), np.uint8)
    rgba[:, :7] = (255, 0, 0, 255)            # opaque red half, transparent other half
    path = tmp_path / "half.png"
    Image.fromarray(rgba).save(path)
    for source in (path, str(path), path.read_bytes(), Image.open(path), rgba):
        out = Preprocessor(info())(source)
        np.testing.assert_array_equal(out[:, 0, 0], [0, 0, 255])        # BGR of red
        np.testing.assert_array_equal(out[:, 0, 13], [255, 255, 255])   # white behind alpha 0


@pytest.mark.parametrize("mode", ["squash", "crop", "fill", "half_crop"])
def test_dataset_resize_mode_is_the_models(mode, rng):
    image = rng.integers(0, 256, (31, 18, 3), dtype=np.uint8)   # tall, to a wide dataset size
    out = Preprocessor(info(mode=mode), seed=5)(image)
    expected = resize_image(Image.fromarray(image), 10, 14, 3, mode, np.random.default_rng(5))
    np.testing.assert_array_equal(out, expected.transpose(2, 0, 1)[::-1].astype(np.float32))


def test_larger_dataset_is_resized_whole_with_the_mean_image_resized_too(rng):
    # a "crop network" (dataset 13x17 stored, input 10x14), mean image at the dataset size
    stored = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    mean = rng.integers(0, 256, (3, 13, 17)).astype(np.float32)      # BGR, as mean.binaryproto
    out = Preprocessor(info(dataset=(13, 17), mean_type="image", mean=mean, scale=0.5))(stored)
    image = caffe_resize(stored.astype(np.float32), 10, 14).transpose(2, 0, 1)[::-1]
    mean10 = np.stack([np.asarray(Image.fromarray(c.astype(np.uint8)).resize((14, 10), Image.BILINEAR))
                       for c in mean]).astype(np.float32)
    np.testing.assert_allclose(out, (image - mean10) * 0.5, atol=1e-4)


def test_center_crop_is_caffes_test_phase(rng):
    stored = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    mean = rng.integers(0, 256, (3, 13, 17)).astype(np.float32)
    out = Preprocessor(info(dataset=(13, 17), mean_type="image", mean=mean), crop="center")(stored)
    top, left = (13 - 10) // 2, (17 - 14) // 2                      # 1, 1: integer division
    bgr = stored.transpose(2, 0, 1)[::-1].astype(np.float32)
    np.testing.assert_array_equal(out, (bgr - mean)[:, top:top + 10, left:left + 14])


def test_crop_and_resize_agree_without_a_crop(rng):
    image = rng.integers(0, 256, (10, 14), dtype=np.uint8)
    spec = info(channels=1, pixel=(100.0,), mean_type="pixel")
    np.testing.assert_array_equal(Preprocessor(spec, crop="center")(image), Preprocessor(spec)(image))


def test_mean_pixel_is_per_channel(rng):
    rgb = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    out = Preprocessor(info(mean_type="pixel", pixel=(10.0, 20.0, 30.0)))(rgb)
    bgr = rgb.transpose(2, 0, 1)[::-1].astype(np.float32)
    np.testing.assert_allclose(out, bgr - np.array([10, 20, 30], np.float32)[:, None, None])


def test_mean_image_at_the_input_size_is_used_as_is(rng):
    gray = rng.integers(0, 256, (10, 14), dtype=np.uint8)
    mean = rng.uniform(0, 255, (1, 10, 14)).astype(np.float32)
    out = Preprocessor(info(channels=1, mean_type="image", mean=mean))(gray)
    np.testing.assert_allclose(out[0], gray - mean[0], atol=1e-5)


def test_batch_stacks(rng):
    images = [rng.integers(0, 256, (9 + i, 12, 3), dtype=np.uint8) for i in range(3)]
    pre = Preprocessor(info())
    batch = pre.batch(images)
    assert batch.shape == (3, 3, 10, 14)
    np.testing.assert_array_equal(batch[2], pre(images[2]))
    assert pre.batch([]).shape == (0, 3, 10, 14)


def test_errors():
    with pytest.raises(InferenceError, match="crop must be"):
        Preprocessor(info(), crop="middle")
    with pytest.raises(InferenceError, match="at least as large"):
        Preprocessor(info(dataset=(8, 20)), crop="center")
    with pytest.raises(InferenceError, match="empty"):
        Preprocessor(info())(b"")
    with pytest.raises(InferenceError, match="not an image"):
        Preprocessor(info())(b"hello")
    png = io.BytesIO()
    Image.new("RGB", (40, 30)).save(png, format="PNG")
    with pytest.raises(InferenceError, match="decode"):
        Preprocessor(info())(png.getvalue()[:-30])


@pytest.mark.parametrize("channels,shape,dataset,skips", [
    (1, (10, 14), None, True),          # grey pixels at the dataset size: load and resize skipped
    (3, (10, 14, 3), None, True),       # RGB likewise
    (3, (13, 17, 3), (13, 17), True),   # at a dataset size larger than the input: resized after
    (3, (10, 14), None, False),         # grey for a colour model: repeated, through PIL
    (1, (9, 15), (10, 14), False),      # another size: resized, through PIL
])
def test_pixels_as_an_array_give_what_the_image_gives(rng, monkeypatch, channels, shape, dataset,
                                                      skips):
    """pre(pixels) == pre(Image.fromarray(pixels)), bit for bit, with a mean and a scale,
    whether or not loading and resizing can be skipped."""
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    size = dataset or (10, 14)
    mean = rng.uniform(0, 255, (channels, *size)).astype(np.float32)
    pre = Preprocessor(info(channels=channels, dataset=dataset, mean_type="image", mean=mean,
                            scale=0.5))
    expected = pre(Image.fromarray(pixels))
    loads = []
    load = preprocess.load_digits_image
    monkeypatch.setattr(preprocess, "load_digits_image",
                        lambda image, limit: loads.append(1) or load(image, limit))
    got = pre(pixels)
    assert loads == ([] if skips else [1])
    assert got.dtype == np.float32 and got.shape == (channels, 10, 14)
    np.testing.assert_array_equal(got, expected)
