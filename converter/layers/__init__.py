"""Layer families; importing this package fills converter.registry.REGISTRY."""
from . import (accuracy, activation, batch_norm, concat, convolution, data, dropout, eltwise,  # noqa: F401
               inner_product, loss, lrn, pooling, power, reshape, scale, softmax)
from . import elementwise, normalization, reduction, spp, tile  # noqa: F401  (Caffe 1.0/master extras)
from . import (dummy_data, embed, loss_logistic, loss_margin, parameter,  # noqa: F401  (Caffe 1.0 extras)
               pooling_stochastic, reindex)
from . import axpy, depthwise, relu6, resize, shuffle  # noqa: F401  (fork layers)
