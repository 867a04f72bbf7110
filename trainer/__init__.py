"""Training from Caffe solver and network files with Caffe's semantics; DIGITS model jobs."""
