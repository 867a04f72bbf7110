"""caffe_resize (caffe.io.resize_image: scikit-image order 1, constant border) and resize_mean."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from inference.resize import caffe_resize, resize_mean


def test_upscale_border_blends_with_the_minimum_by_hand():
    # one row [10, 20] to 4 columns: samples at -0.25, 0.25, 0.75, 1.25 (i + 0.5) / 2 - 0.5;
    # outside the image scikit-image reads cval 0 of the min-max normalised image = the minimum
    out = caffe_resize(np.array([[10.0, 20.0]]), 1, 4)
    np.testing.assert_allclose(out, [[10.0, 12.5, 17.5, 17.5]], atol=1e-6)


def test_downscale_matches_opencv_bilinear(rng):
    # shrinking samples inside the image only, where OpenCV's INTER_LINEAR is the same formula
    image = rng.uniform(0, 255, (37, 53, 3)).astype(np.float32)
    ours = caffe_resize(image, 29, 41)
    theirs = cv2.resize(image, (41, 29), interpolation=cv2.INTER_LINEAR)
    assert ours.shape == (29, 41, 3)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_upscale_interior_matches_opencv(rng):
    image = rng.uniform(0, 255, (11, 7, 1)).astype(np.float32)
    ours = caffe_resize(image, 33, 21)[:, :, 0]
    theirs = cv2.resize(image[:, :, 0], (21, 33), interpolation=cv2.INTER_LINEAR)
    # the outer ring differs: OpenCV repeats the edge, scikit-image blends in the minimum
    np.testing.assert_allclose(ours[2:-2, 2:-2], theirs[2:-2, 2:-2], atol=1e-3)
    assert not np.allclose(ours[0], theirs[0], atol=1e-3)


def test_same_size_is_unchanged(rng):
    image = rng.uniform(0, 255, (5, 6, 3))
    np.testing.assert_array_equal(caffe_resize(image, 5, 6), image.astype(np.float32))


def test_constant_image_stays_constant():
    np.testing.assert_allclose(caffe_resize(np.full((8, 9, 3), 77.0), 5, 13), 77.0)


def test_mean_is_resized_per_channel_with_pil_bilinear(rng):
    mean = rng.integers(0, 256, (3, 16, 20)).astype(np.float32)
    out = resize_mean(mean, 12, 15)
    assert out.shape == (3, 12, 15) and out.dtype == np.float32
    for c in range(3):
        plane = Image.fromarray(mean[c].astype(np.uint8)).resize((15, 12), Image.BILINEAR)
        np.testing.assert_array_equal(out[c], np.asarray(plane))
    # a colour mean resized as one RGB image (scipy.misc.imresize) gives the same planes
    rgb = Image.fromarray(mean.transpose(1, 2, 0).astype(np.uint8)).resize((15, 12), Image.BILINEAR)
    np.testing.assert_array_equal(out, np.asarray(rgb).transpose(2, 0, 1))
