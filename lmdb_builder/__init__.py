"""DIGITS datasets (MNIST, image folders, list files) into LMDB of Caffe Datum, byte-compatible with DIGITS.

    from lmdb_builder import build_dataset, plan_mnist, load_mnist, ImageSettings, BuildOptions
    plan = plan_mnist(load_mnist(find_mnist_dir()))            # DIGITS' 45,002 / 14,998 split
    build_dataset(plan, "jobs/mnist", ImageSettings(28, 28, 1))

    from lmdb_builder import DatumDB, read_datum               # what Caffe's Data layer sees
    image, label = DatumDB("jobs/mnist/train_db")[0]           # uint8 CxHxW, BGR for colour
"""
from lmdb_builder.build import BuildOptions, BuildResult, DbResult, build_dataset
from lmdb_builder.datum import array_to_datum, datum_to_array, encode_datum, parse_datum, read_datum
from lmdb_builder.errors import BuilderError, LoadImageError, NotEnoughImagesError
from lmdb_builder.folders import plan_folder, plan_list, read_labels
from lmdb_builder.images import load_image, resize_image
from lmdb_builder.mean import MeanAccumulator, compute_mean, read_mean, write_mean
from lmdb_builder.mnist import find_mnist_dir, load_mnist, plan_mnist
from lmdb_builder.plan import DatasetPlan, Entry, ImageSettings
from lmdb_builder.reader import Cursor, DatumDB
from lmdb_builder.split import three_way_split_indices

__all__ = [
    "BuildOptions", "BuildResult", "DbResult", "build_dataset", "array_to_datum", "datum_to_array",
    "encode_datum", "parse_datum", "read_datum", "BuilderError", "LoadImageError",
    "NotEnoughImagesError", "plan_folder", "plan_list", "read_labels", "load_image",
    "resize_image", "MeanAccumulator", "compute_mean", "read_mean", "write_mean",
    "find_mnist_dir", "load_mnist", "plan_mnist", "DatasetPlan", "Entry", "ImageSettings",
    "Cursor", "DatumDB", "three_way_split_indices",
]
