"""Layer type strings that Caffe knows: BVLC Caffe's layer factory plus NVIDIA Caffe's additions
and the fork layers the converter reads (caffe.proto's "Fork" comments say whose each is).

The parser keeps any type (it is a string); `python -m prototxt check` flags the ones below it
does not know, which is how typos such as "Convolutoin" and custom layers show up.
"""
from __future__ import annotations

BVLC_LAYER_TYPES = frozenset("""
AbsVal Accuracy ArgMax BatchNorm BatchReindex Bias BNLL Clip Concat ContrastiveLoss Convolution
Crop Data Deconvolution Dropout DummyData Eltwise ELU Embed EuclideanLoss Exp Filter Flatten
HDF5Data HDF5Output HingeLoss Im2col ImageData InfogainLoss InnerProduct Input Log LRN LSTM
LSTMUnit MemoryData MultinomialLogisticLoss MVN Parameter Pooling Power PReLU Python Recurrent
Reduction ReLU Reshape RNN Scale Sigmoid SigmoidCrossEntropyLoss Silence Slice Softmax
SoftmaxWithLoss Split SPP Swish TanH Threshold Tile WindowData
""".split())

NVCAFFE_LAYER_TYPES = frozenset("DetectNetTransformation L1Loss".split())

FORK_LAYER_TYPES = frozenset("""
Axpy ConvolutionDepthwise DepthwiseConvolution Interp ReLU6 ShuffleChannel Upsample
""".split())

KNOWN_LAYER_TYPES = BVLC_LAYER_TYPES | NVCAFFE_LAYER_TYPES | FORK_LAYER_TYPES
