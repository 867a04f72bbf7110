"""Shape inference and `python -m converter shapes`: Caffe's "Top shape:" lines, parameter
counts, and the smallest working input when a size becomes zero or negative."""
from __future__ import annotations

import pytest

from converter.__main__ import main
from converter.errors import ShapeError
from converter.shapes import infer_shapes, parse_dims
from prototxt import build_network, read_net


def block(text: str, layer: str) -> str:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{layer} ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return "\n".join(lines[start:end])


def test_seed_deploy_prints_caffe_top_shapes(seed_job, capsys):
    assert main(["shapes", str(seed_job / "deploy.prototxt")]) == 0
    out = capsys.readouterr().out
    assert "Input data: 1 3 224 224 (150528)" in out
    assert block(out, "conv1/7x7_s2") == ("conv1/7x7_s2 (Convolution) data -> conv1/7x7_s2\n"
                                          "    Top shape: 1 64 112 112 (802816)\n"
                                          "    Parameters: 9472 (64x3x7x7 + 64)")
    assert "Top shape: 1 1024 7 7 (50176)" in block(out, "inception_5b/output")
    assert "Top shape: 1 1024 1 1 (1024)" in block(out, "pool5/7x7_s1")
    assert "(in place)" in block(out, "pool5/drop_7x7_s1")
    assert "Total: 142 layers, 5983802 parameters" in out and out.rstrip().endswith("Outputs: softmax")


def test_googlenet_on_112_names_the_layer_and_223(seed_job, capsys):
    assert main(["shapes", str(seed_job / "deploy.prototxt"), "--input", "1x3x112x112"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "layer 'pool5/7x7_s1' (Pooling)" in err
    assert "the smallest input that works is 1x3x223x223 ('data')" in err


def test_alexnet_on_32_names_pool5():
    net = build_network("alexnet")
    (fc8,) = [layer for layer in net.layer if layer.name == "fc8"]
    fc8.inner_product_param.num_output = 10
    with pytest.raises(ShapeError) as err:
        infer_shapes(net, "TEST", ["deploy"], input_shapes={"data": (1, 3, 32, 32)})
    assert err.value.layer == "pool5" and err.value.smallest == (1, 3, 39, 39)


def test_smallest_input_really_is_the_smallest(seed_job):
    net = read_net(seed_job / "deploy.prototxt")
    assert infer_shapes(net, input_shapes={"data": (2, 3, 223, 223)}).model.blob_shapes()[
        "pool5/7x7_s1"] == (2, 1024, 1, 1)
    with pytest.raises(ShapeError):
        infer_shapes(net, input_shapes={"data": (2, 3, 222, 222)})


def test_all_in_one_network_with_stage_and_classes(capsys):
    assert main(["shapes", "lenet", "--classes", "10", "--stage", "train", "--phase", "TRAIN",
                 "--input", "1x28x28"]) == 0
    out = capsys.readouterr().out
    assert "Input data: 64 1 28 28" in out and "Input label: 64 (64)" in out
    assert "Parameters: 400500 (500x800 + 500)" in block(out, "ip1")
    assert "with loss weight 1" in block(out, "loss")


def test_train_val_needs_input_and_says_so(seed_job, capsys):
    assert main(["shapes", str(seed_job / "train_val.prototxt")]) == 2
    assert "--input 16xCxHxW" in capsys.readouterr().err
    assert main(["shapes", str(seed_job / "train_val.prototxt"), "--phase", "TRAIN"]) == 2
    assert "layer 'train-data' (Data)" in capsys.readouterr().err

    assert main(["shapes", str(seed_job / "train_val.prototxt"), "--phase", "TRAIN",
                 "--input", "data=3x256x256"]) == 0
    out = capsys.readouterr().out
    assert "Input data: 32 3 224 224" in out and "with loss weight 0.3" in block(out, "loss1/loss")


def test_bad_input_argument(capsys):
    with pytest.raises(SystemExit):
        main(["shapes", "lenet", "--input", "1x2xfoo"])
    assert "NxCxHxW" in capsys.readouterr().err
    with pytest.raises(ValueError):
        parse_dims("3,4")
