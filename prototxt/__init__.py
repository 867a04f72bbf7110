"""Caffe file formats: schema, text/binary I/O, upgrades, net states, DIGITS network files."""
