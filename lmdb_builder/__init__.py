"""DIGITS datasets (MNIST, image folders, list files) into LMDB of Caffe Datum, byte-compatible with DIGITS."""
