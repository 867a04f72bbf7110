"""Layer families; importing this package fills converter.registry.REGISTRY."""
from . import (accuracy, activation, concat, convolution, data, dropout, eltwise, inner_product,  # noqa: F401
               loss, lrn, normalization, pooling, power, reshape, softmax)
