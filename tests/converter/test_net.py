"""build_model: net-level checks, phases and stages, losses, and golden blob shapes of DIGITS'
LeNet, AlexNet and GoogLeNet (all-in-one with stages, DIGITS' split, the seed job's files)."""
from __future__ import annotations

import pytest
import torch

from converter import ConverterError, build_model, supported_types
from prototxt import DatasetFacts, build_network, digits_split, read_net

from .util import parse_net

DIGITS_STATES = {"train": ("TRAIN", ["train"]), "val": ("TEST", ["val"]), "deploy": ("TEST", ["deploy"])}


def classes(net, n=10):
    for layer in net.layer:
        if layer.type == "InnerProduct" and not layer.inner_product_param.num_output:
            layer.inner_product_param.num_output = n
    return net


def standard(name):
    return classes(build_network(name))


# -- net-level checks --------------------------------------------------------------------------
def test_unknown_type_names_layer_type_file_and_supported_types(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('input: "x" input_shape { dim: 1 dim: 2 }\n'
                    'layer { name: "odd" type: "Convolutoin" bottom: "x" top: "y" }\n')
    with pytest.raises(ConverterError) as err:
        build_model(path)
    text = str(err.value)
    assert str(path) in text and "layer 'odd' (Convolutoin)" in text
    assert "supported types: " + ", ".join(supported_types()) in text


@pytest.mark.parametrize("text,message", [
    ('layer { name: "a" type: "ReLU" bottom: "x" bottom: "x" top: "y" }', "takes 1 bottom blob(s), but has 2"),
    ('layer { name: "a" type: "Concat" bottom: "x" top: "y" top: "z" }', "takes 1 top blob(s), but has 2"),
    ('layer { name: "a" type: "ReLU" bottom: "nope" top: "y" }', "unknown bottom blob 'nope' (bottom index 0)"),
    ('layer { name: "a" type: "InnerProduct" bottom: "x" top: "x" inner_product_param { num_output: 2 } }',
     "computed in place, which InnerProduct does not support"),
    ('layer { name: "a" type: "ReLU" bottom: "x" top: "y" } layer { name: "b" type: "ReLU" bottom: "x" top: "y" }',
     "top blob 'y' is produced by multiple sources"),
    ('layer { name: "a" type: "ReLU" bottom: "x" top: "y" } layer { name: "a" type: "ReLU" bottom: "y" top: "z" }',
     "the same name"),
    ('layer { name: "a" type: "ReLU" bottom: "x" top: "y" loss_weight: 1 loss_weight: 2 }',
     "loss_weight must be unspecified or given once per top blob"),
    ('layer { name: "a" type: "ReLU" bottom: "x" top: "y" include { phase: TEST } exclude { phase: TRAIN } }',
     "either include rules or exclude rules"),
])
def test_net_level_errors(text, message):
    with pytest.raises(ConverterError) as err:
        build_model(parse_net('input: "x" input_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n' + text))
    assert message in str(err.value)


def test_data_layers_need_a_shape_and_say_how():
    net = standard("lenet")
    with pytest.raises(ConverterError, match=r"input_shapes=\{'data': \(N, C, H, W\)\}.*--input 64xCxHxW"):
        build_model(net, "TRAIN", ["train"])
    model = build_model(net, "TRAIN", ["train"], input_shapes={"data": (1, 28, 28)})
    assert model.input_shapes == {"data": (64, 1, 28, 28), "label": (64,)}


def test_data_layer_crop_and_memory_and_image_data():
    net = parse_net("""
        layer { name: "d" type: "Data" top: "data" top: "label" data_param { batch_size: 5 }
                transform_param { crop_size: 7 } }
        layer { name: "m" type: "MemoryData" top: "m" top: "ml"
                memory_data_param { batch_size: 2 channels: 3 height: 4 width: 6 } }
        layer { name: "i" type: "ImageData" top: "i" image_data_param { batch_size: 3 new_height: 9 new_width: 8 } }
        layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 4 dim: 2 } } }
    """)
    model = build_model(net, input_shapes={"data": (3, 9, 11)})
    assert model.input_shapes == {"data": (5, 3, 7, 7), "label": (5,), "m": (2, 3, 4, 6), "ml": (2,),
                                  "i": (3, 3, 9, 8), "a": (4, 2), "b": (4, 2)}


def test_losses_weights_and_outputs():
    net = parse_net("""
        input: "x" input_shape { dim: 4 dim: 3 }  input: "t" input_shape { dim: 4 dim: 3 }
        input: "label" input_shape { dim: 4 }
        layer { name: "e" type: "EuclideanLoss" bottom: "x" bottom: "t" top: "e" loss_weight: 0.5 }
        layer { name: "s" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "s" }
        layer { name: "r" type: "ReLU" bottom: "x" top: "r" loss_weight: 2 }
        layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" }
    """)
    model = build_model(net)
    assert model.outputs == ("acc", "e", "r", "s")  # sorted, as Caffe's std::set
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    label = torch.tensor([0.0, 1.0, 2.0, 1.0])
    out = model(x, t, label=label)
    assert out.loss_weights == {"e": 0.5, "s": 1.0, "r": 2.0}
    want = 0.5 * out["e"] + out["s"] + 2 * out["r"].sum()
    assert out.loss.item() == pytest.approx(want.item())
    assert set(out.accuracies) == {"acc"}
    with pytest.raises(ConverterError, match="missing input"):
        model(x, t)


def test_blobs_are_released_unless_kept():
    net = parse_net('input: "x" input_shape { dim: 2 dim: 3 }'
                    'layer { name: "a" type: "ReLU" bottom: "x" top: "a" }'
                    'layer { name: "b" type: "TanH" bottom: "a" top: "b" }')
    model = build_model(net)
    x = torch.randn(2, 3)
    assert set(model(x).blobs) == {"b"}
    assert set(model(x, keep=["a"]).blobs) == {"a", "b"}
    assert set(model(x, keep="all").blobs) == {"x", "a", "b"}


def test_modules_carry_caffe_names_and_params_their_specs():
    model = build_model(standard("lenet"), "TEST", ["deploy"], input_shapes={"data": (1, 1, 28, 28)})
    assert "(conv1): Conv2d(1, 20" in str(model) and "(pool1): CaffePooling(MAX" in str(model)
    assert list(model.state_dict()) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                        "ip1.weight", "ip1.bias", "ip2.weight", "ip2.bias"]
    specs = [(layer, i, spec.lr_mult, spec.decay_mult) for layer, i, _, spec in model.caffe_params()]
    assert specs[:2] == [("conv1", 0, 1.0, 1.0), ("conv1", 1, 2.0, 1.0)]


def test_names_with_dots_still_map():
    net = parse_net('input: "x" input_shape { dim: 2 dim: 3 }'
                    'layer { name: "fc.1" type: "InnerProduct" bottom: "x" top: "y" '
                    'inner_product_param { num_output: 2 } }')
    model = build_model(net)
    assert list(model.state_dict()) == ["fc_1.weight", "fc_1.bias"]
    assert model.caffe_blobs("fc.1")[0].shape == (2, 3)


# -- DIGITS networks: golden shapes --------------------------------------------------------------
def shapes_of(model):
    return model.blob_shapes()


def check_lenet(s, n):
    assert s["scaled"] == (n, 1, 28, 28)
    assert s["conv1"] == (n, 20, 24, 24) and s["pool1"] == (n, 20, 12, 12)
    assert s["conv2"] == (n, 50, 8, 8) and s["pool2"] == (n, 50, 4, 4)
    assert s["ip1"] == (n, 500) and s["ip2"] == (n, 10)


def check_alexnet(s, n):
    assert s["conv1"] == (n, 96, 55, 55) and s["pool1"] == (n, 96, 27, 27)
    assert s["conv2"] == (n, 256, 27, 27) and s["pool2"] == (n, 256, 13, 13)
    assert s["conv5"] == (n, 256, 13, 13) and s["pool5"] == (n, 256, 6, 6)
    assert s["fc6"] == (n, 4096) and s["fc8"] == (n, 10)


def check_googlenet(s, n, aux=True):
    assert s["conv1/7x7_s2"] == (n, 64, 112, 112) and s["pool1/3x3_s2"] == (n, 64, 56, 56)
    assert s["pool2/3x3_s2"] == (n, 192, 28, 28) and s["inception_3b/output"] == (n, 480, 28, 28)
    assert s["pool3/3x3_s2"] == (n, 480, 14, 14) and s["inception_4e/output"] == (n, 832, 14, 14)
    assert s["pool4/3x3_s2"] == (n, 832, 7, 7) and s["inception_5b/output"] == (n, 1024, 7, 7)
    assert s["pool5/7x7_s1"] == (n, 1024, 1, 1) and s["loss3/classifier"] == (n, 10)
    if aux:
        assert s["loss1/ave_pool"] == (n, 512, 4, 4) and s["loss2/ave_pool"] == (n, 528, 4, 4)
        assert s["loss1/fc"] == (n, 1024)


def test_lenet_all_in_one_by_stage():
    net = standard("lenet")
    for stage, (phase, stages) in DIGITS_STATES.items():
        shape = {"data": (1, 1, 28, 28)} if stage == "deploy" else {"data": (1, 28, 28)}
        model = build_model(net, phase, stages, input_shapes=shape)
        n = {"train": 64, "val": 32, "deploy": 1}[stage]
        check_lenet(model.blob_shapes(), n)
        assert model.caffe_blobs("ip1")[0].shape == (500, 800)  # ip1's input is 50x4x4 = 800
        assert model.outputs == {"train": ("loss",), "val": ("accuracy", "loss"),
                                 "deploy": ("softmax",)}[stage]
        assert model.training == (phase == "TRAIN")


@pytest.mark.parametrize("name,check,image,crop", [("alexnet", check_alexnet, (256, 256, 3), None),
                                                   ("googlenet", check_googlenet, (256, 256, 3), None)])
def test_digits_split_train_val_and_deploy(name, check, image, crop):
    h, w, c = image
    facts = DatasetFacts(num_classes=10, height=h, width=w, channels=c, dataset_dir="/data/ds")
    split = digits_split(build_network(name), facts, crop_size=crop)
    for phase, n in (("TRAIN", None), ("TEST", None)):
        model = build_model(split.train_val, phase, input_shapes={"data": (c, h, w)})
        batch = model.input_shapes["data"][0]
        check(model.blob_shapes(), batch)
    deploy = build_model(split.deploy)
    check(deploy.blob_shapes(), 1, **({"aux": False} if name == "googlenet" else {}))
    assert deploy.outputs == ("softmax",)


def test_seed_job_files(seed_job):
    deploy = build_model(seed_job / "deploy.prototxt")
    check_googlenet(deploy.blob_shapes(), 1, aux=False)
    assert deploy.input_names == ["data"] and deploy.outputs == ("softmax",)
    train_val = read_net(seed_job / "train_val.prototxt")
    train = build_model(train_val, "TRAIN", input_shapes={"data": (3, 256, 256)})
    check_googlenet(train.blob_shapes(), 32)
    assert train.outputs == ("loss", "loss1/loss", "loss2/loss")
    val = build_model(train_val, "TEST", input_shapes={"data": (3, 256, 256)})
    check_googlenet(val.blob_shapes(), 16)
    assert {"accuracy", "accuracy-top5", "loss1/accuracy"} <= set(val.outputs)


def test_googlenet_losses_dropout_and_modes():
    net = standard("googlenet")
    model = build_model(net, "TRAIN", ["train"], input_shapes={"data": (1, 3, 224, 224)}, seed=3)
    assert model.training
    g = torch.Generator().manual_seed(1)
    data = torch.randn(1, 3, 224, 224, generator=g) * 50
    label = torch.tensor([3.0])
    out = model(data, label, keep=["pool5/7x7_s1"])
    assert out.loss_weights == {"loss1/loss": pytest.approx(0.3), "loss2/loss": pytest.approx(0.3),
                                "loss": 1.0}
    want = sum(w * out.losses[k] for k, w in out.loss_weights.items())
    assert out.loss.item() == pytest.approx(want.item(), rel=1e-6)
    pooled = out["pool5/7x7_s1"]
    dropped = out.blobs.get("pool5/7x7_s1")  # in place: the kept blob is after dropout
    assert dropped is pooled
    out.loss.backward()
    assert model.caffe_blobs("conv1/7x7_s2")[0].grad is not None
    model.eval()
    with torch.no_grad():
        a = model(data, label).loss
        b = model(data, label).loss
    assert a == b  # no dropout in TEST mode


# -- memory: refuse a net that cannot fit before allocating (issue 14, defect 2) ---------------
def _huge_lenet():
    net = standard("lenet")
    ip1 = next(l for l in net.layer if l.name == "ip1")
    ip1.inner_product_param.num_output = 4_000_000_000
    return net


def test_net_too_big_for_the_machine_is_refused_before_allocating():
    with pytest.raises(ConverterError) as err:
        build_model(_huge_lenet(), "TEST", ["deploy"], input_shapes={"data": (1, 1, 28, 28)})
    text = str(err.value)
    assert "layer 'ip1' (InnerProduct)" in text and "too big for this machine" in text
    assert "4000000000x800" in text and "TiB" in text and "of memory" in text
    # shapes alone (the meta device) still work: `converter shapes` describes such a net
    model = build_model(_huge_lenet(), "TEST", ["deploy"], input_shapes={"data": (1, 1, 28, 28)},
                        materialize=False)
    assert model.blob_shapes()["ip1"] == (1, 4_000_000_000)


def test_memory_limit_is_the_available_memory(monkeypatch):
    from converter import memory
    net = parse_net('input: "x" input_shape { dim: 2 dim: 3 }\n'
                    'layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" '
                    'inner_product_param { num_output: 1000 } }')
    need = memory.estimate(build_model(net, materialize=False))
    assert need.parameters == (1000 * 3 + 1000) * 4 and need.data == (2 * 3 + 2 * 1000) * 4
    monkeypatch.setattr(memory, "machine_memory",
                        lambda: memory.MachineMemory(1 << 30, need.total - 1))
    with pytest.raises(ConverterError, match=r"layer 'fc' \(InnerProduct\).*1.0 GiB of memory"):
        build_model(net)
    monkeypatch.setattr(memory, "machine_memory", lambda: memory.MachineMemory(1 << 30, need.total))
    assert build_model(net).fc.weight.shape == (1000, 3)


def test_converter_onnx_refuses_a_net_too_big(tmp_path, capsys):
    from converter.__main__ import main
    from prototxt import write_text
    deploy = tmp_path / "deploy.prototxt"
    split = digits_split(build_network("lenet"), DatasetFacts(num_classes=10, height=28, width=28,
                                                             channels=1, dataset_dir="/d"))
    ip1 = next(l for l in split.deploy.layer if l.name == "ip1")
    ip1.inner_product_param.num_output = 4_000_000_000
    write_text(split.deploy, deploy)
    assert main(["onnx", "--model", str(deploy), "--weights", str(tmp_path / "w.caffemodel"),
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {deploy}: layer 'ip1' (InnerProduct): the net is too big")
