"""PyTorch weights both ways: ``torch.save`` state dicts and ``.safetensors`` files made by
real PyTorch are read by ``model.load_weights`` (by order, by rename, by regex) and give
PyTorch's outputs and training steps; ``save_weights("x.safetensors")`` gives a file
that ``nn.Sequential.load_state_dict`` takes and that computes the same outputs."""

from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import layerkit as lk
from layerkit.__main__ import inspect as lk_inspect
from layerkit.io.keras_files import detect_format
from layerkit.io.pytorch import read_state_dict
from layerkit.io.stored import FormatError

X = np.random.default_rng(5).standard_normal((7, 6)).astype(np.float32)
TOL = 2e-6


# --- local helpers -------------------------------------------------------------------
def torch_mlp(batchnorm: bool, seed: int = 0) -> torch.nn.Sequential:
    """6 -> 8 (BN) relu -> 5 relu -> 3, as nn.Sequential, with trained BN statistics."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(6, 8)]
    if batchnorm:
        layers.append(torch.nn.BatchNorm1d(8))
    layers += [torch.nn.ReLU(), torch.nn.Linear(8, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)]
    net = torch.nn.Sequential(*layers)
    if batchnorm:  # a few training-mode passes so the running statistics are not 0 / 1
        with torch.no_grad():
            for _ in range(3):
                net(torch.randn(16, 6) * 2 + 1)
        net[1].weight.data.uniform_(0.5, 1.5)
        net[1].bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def layerkit_mlp(batchnorm: bool, names=None, input_layer: bool = True) -> lk.Sequential:
    names = names or ["h1", "bn", "h2", "out"]
    layers = [lk.layers.Input((6,))] if input_layer else []
    layers.append(lk.layers.Dense(8, name=names[0]))
    if batchnorm:
        layers.append(lk.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=names[1]))
    layers += [
        lk.layers.Activation("relu"),
        lk.layers.Dense(5, activation="relu", name=names[2]),
        lk.layers.Dense(3, name=names[3]),
    ]
    return lk.Sequential(layers)


def torch_out(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def max_diff(model: lk.Sequential, net: torch.nn.Module) -> float:
    return float(np.abs(model.predict(X, verbose=0) - torch_out(net, X)).max())


def snapshot(model) -> list[bytes]:
    return [w.tobytes() for w in model.get_weights()]


# --- reading what PyTorch wrote ------------------------------------------------------
@pytest.mark.parametrize("batchnorm", [False, True], ids=["mlp", "mlp_batchnorm"])
@pytest.mark.parametrize("writer", ["torch.save", "safetensors"])
def test_layerkit_reproduces_pytorch_outputs(tmp_path, batchnorm, writer):
    net = torch_mlp(batchnorm)
    if writer == "torch.save":
        path = tmp_path / "mlp.pt"
        torch.save(net.state_dict(), path)
        assert detect_format(path) == "pytorch"
    else:
        path = tmp_path / "mlp.safetensors"
        save_file(net.state_dict(), str(path))
        assert detect_format(path) == "safetensors"
    model = layerkit_mlp(batchnorm)
    pairs = model.load_weights(path)
    expected = [("0", "h1"), ("1", "bn"), ("3", "h2"), ("5", "out")]
    if not batchnorm:
        expected = [("0", "h1"), ("2", "h2"), ("4", "out")]
    assert pairs == expected
    np.testing.assert_array_equal(model.get_layer("h1").kernel.value, net[0].weight.detach().T)
    assert max_diff(model, net) < TOL


def test_nested_checkpoint_with_optimizer_state_gives_the_model(tmp_path):
    net = torch_mlp(False)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(4, 6)).sum().backward()
    optimizer.step()  # the optimizer's state dict now holds tensors, ints, floats, tuples
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "model": net.state_dict(), "optimizer": optimizer.state_dict()}, path)
    model = layerkit_mlp(False)
    model.load_weights(path)
    assert max_diff(model, net) < TOL


def test_bin_suffix_and_unbuilt_model_are_built_from_the_file(tmp_path):
    net = torch_mlp(False)
    path = tmp_path / "pytorch_model.bin"
    torch.save(net.state_dict(), path)
    model = layerkit_mlp(False, input_layer=False)
    assert not model.built
    model.load_weights(path)
    assert model.built
    assert max_diff(model, net) < TOL


def test_named_modules_by_rename_dict_and_function(tmp_path):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(torch.tanh(self.fc1(x)))

    torch.manual_seed(1)
    net = Net().eval()
    path = tmp_path / "named.pt"
    torch.save(net.state_dict(), path)
    for rename in ({"fc1": "hidden1", "fc2": "out"}, lambda n: "hidden1" if n == "fc1" else "out"):
        model = lk.Sequential(
            [
                lk.layers.Input((6,)),
                lk.layers.Dense(8, activation="tanh", name="hidden1"),
                lk.layers.Dense(3, name="out"),
            ]
        )
        assert model.load_weights(path, rename=rename) == [("fc1", "hidden1"), ("fc2", "out")]
        assert max_diff(model, net) < TOL


def test_matching_names_load_by_name(tmp_path):
    net = torch_mlp(False)
    path = tmp_path / "m.pt"
    state = {f"{name}.{k}": v for name, i in (("a", 0), ("b", 2), ("c", 4))
             for k, v in net[i].state_dict().items()}  # fmt: skip
    torch.save(state, path)
    model = layerkit_mlp(False, names=["c", None, "b", "a"])  # same names, other places
    with pytest.raises(ValueError, match=r"'a'.*\(5,\) \(as 'a'\)|model expects shape"):
        model.load_weights(path)


def test_regex_restores_lower_layers_only(tmp_path):
    net = torch_mlp(False)
    path = tmp_path / "m.safetensors"
    save_file(net.state_dict(), str(path))
    model = layerkit_mlp(False)
    top_before = [w.copy() for w in model.get_layer("out").get_weights()]
    assert model.load_weights(path, layers=r"[02]") == [("0", "h1"), ("2", "h2")]
    np.testing.assert_array_equal(model.get_layer("h2").bias.value, net[2].bias.detach())
    for got, want in zip(model.get_layer("out").get_weights(), top_before, strict=True):
        np.testing.assert_array_equal(got, want)
    # The lower layers compute PyTorch's hidden features exactly.
    hidden = lk.Sequential(model.layers[:3])
    with torch.no_grad():
        want = net[:4](torch.from_numpy(X)).numpy()
    assert np.abs(hidden.predict(X, verbose=0) - want).max() < TOL


def test_by_order_names_the_left_over_layers_and_changes_nothing(tmp_path):
    net = torch_mlp(False)
    path = tmp_path / "m.pt"
    torch.save(net.state_dict(), path)
    model = lk.Sequential([lk.layers.Input((6,)), lk.layers.Dense(8), lk.layers.Dense(5)])
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"left over in the file \['4'\]"):
        model.load_weights(path)
    assert snapshot(model) == before
    bigger = layerkit_mlp(False)
    bigger.add(lk.layers.Dense(2, name="extra"))
    with pytest.raises(ValueError, match=r"in the model \['extra'\]"):
        bigger.load_weights(path)


def test_by_order_refuses_a_batchnorm_into_a_dense(tmp_path):
    net = torch_mlp(True)
    path = tmp_path / "m.pt"
    torch.save(net.state_dict(), path)
    model = lk.Sequential(
        [lk.layers.Input((6,)), lk.layers.Dense(8), lk.layers.Dense(8), lk.layers.Dense(5)]
    )
    model.add(lk.layers.Dense(3))
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"'1' of .* \(BatchNormalization.*into model layer"):
        model.load_weights(path)
    assert snapshot(model) == before


def test_modules_without_a_layerkit_counterpart_are_named(tmp_path):
    state = {"conv.weight": torch.ones(4, 1, 3, 3), "conv.bias": torch.ones(4)}
    state.update(torch_mlp(False)[0].state_dict())  # "weight", "bias": a bare Linear
    path = tmp_path / "conv.pt"
    torch.save(state, path)
    model = layerkit_mlp(False)
    before = snapshot(model)
    unknown = r"'conv' of .* \(unknown kind, weights \['bias', 'weight'\]\) would go into"
    with pytest.raises(ValueError, match=unknown):
        model.load_weights(path, layers="conv")
    mismatch = r"layer 'h1' has weights \['bias', 'kernel'\], the file has \['bias', 'weight'\]"
    with pytest.raises(ValueError, match=mismatch):
        model.load_weights(path, rename={"conv": "h1"}, layers="conv")
    assert snapshot(model) == before
    # The bare Linear ("weight", "bias" at the top) is the layer named "".
    model.load_weights(path, layers="")
    np.testing.assert_array_equal(model.get_layer("h1").bias.value, state["bias"].detach())


def test_batchnorm_with_keras_defaults_warns_and_differs(tmp_path):
    net = torch_mlp(True)
    path = tmp_path / "m.pt"
    torch.save(net.state_dict(), path)
    model = lk.Sequential(
        [
            lk.layers.Input((6,)),
            lk.layers.Dense(8),
            lk.layers.BatchNormalization(name="bn"),  # Keras defaults: 1e-3, 0.99
            lk.layers.Activation("relu"),
            lk.layers.Dense(5, activation="relu"),
            lk.layers.Dense(3),
        ]
    )
    with pytest.warns(UserWarning, match=r"'bn'.*epsilon=0\.001.*momentum=0\.99") as record:
        model.load_weights(path)
    assert "PyTorch's momentum=0.01" in str(record[0].message)
    assert max_diff(model, net) > 1e-4  # the warning is right: eps changes the outputs
    matched = layerkit_mlp(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matched.load_weights(path)  # PyTorch's defaults: no warning
    assert max_diff(matched, net) < TOL


def test_training_steps_match_pytorch_sgd(tmp_path):
    net = torch_mlp(False, seed=3).train()
    path = tmp_path / "m.pt"
    torch.save(net.state_dict(), path)
    model = layerkit_mlp(False)
    model.load_weights(path)
    model.compile(optimizer=lk.optim.SGD(learning_rate=0.05), loss="mse")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    rng = np.random.default_rng(9)
    losses = []
    for _ in range(4):
        x = rng.standard_normal((8, 6)).astype(np.float32)
        y = rng.standard_normal((8, 3)).astype(np.float32)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(net(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        optimizer.step()
        ours = model.train_on_batch(x, y)
        ours = ours[0] if isinstance(ours, (list, tuple)) else ours
        losses.append((float(ours), loss.item()))
    for ours, theirs in losses:
        assert abs(ours - theirs) < 1e-5 * max(1.0, abs(theirs)), losses
    assert max_diff(model, net.eval()) < 1e-5


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_tensor_layouts_dtypes_and_shared_storage(tmp_path, protocol):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "view.t": base.t(),  # non-contiguous: strides (1, 6)
        "view.rows": base[1:3],  # offset into the same storage
        "half.weight": base.half()[:, ::2],
        "bf16.weight": torch.tensor([1.5, -2.25, 3.0e10], dtype=torch.bfloat16),
        "f64.weight": base.double() / 3,
        "ints.weight": torch.tensor([1, -2, 3], dtype=torch.int64),
        "scalar.weight": torch.tensor(2.5),
        "param.weight": torch.nn.Parameter(torch.ones(2, 3)),  # via _rebuild_parameter
    }
    path = tmp_path / "layouts.pt"
    torch.save(state, path, pickle_protocol=protocol)
    arrays = read_state_dict(path)
    assert list(arrays) == list(state)
    for key, tensor in state.items():
        tensor = tensor.detach()
        want = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        assert arrays[key].dtype == want.dtype, key
        np.testing.assert_array_equal(arrays[key], want, err_msg=key)
        assert arrays[key].flags.c_contiguous


def test_big_endian_archives_are_read(tmp_path):
    net = torch_mlp(False)
    little = tmp_path / "little.pt"
    torch.save(net.state_dict(), little)
    big = tmp_path / "big.pt"
    with zipfile.ZipFile(little) as src, zipfile.ZipFile(big, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:  # every storage of this file is float32
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            dst.writestr(info.filename, data)
    model = layerkit_mlp(False)
    model.load_weights(big)
    assert max_diff(model, net) < TOL


def test_legacy_torch_save_is_refused_with_advice(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(torch_mlp(False).state_dict(), path, _use_new_zipfile_serialization=False)
    model = layerkit_mlp(False)
    before = snapshot(model)
    with pytest.raises(FormatError, match=r"legacy torch\.save.*re-save") as err:
        model.load_weights(path)
    assert str(path) in str(err.value)
    assert snapshot(model) == before


def test_inspect_describes_a_torch_file(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(torch_mlp(True).state_dict(), path)
    text = lk_inspect(str(path))
    assert text.startswith("format: pytorch\n")
    assert "  1 (BatchNormalization)\n    gamma: shape=(8,) dtype=float32" in text
    assert "  0 (Dense)\n    kernel: shape=(6, 8) dtype=float32" in text
    assert "num_batches_tracked" not in text


# --- writing what PyTorch reads -------------------------------------------------------
@pytest.mark.parametrize("batchnorm", [False, True], ids=["mlp", "mlp_batchnorm"])
def test_saved_safetensors_load_into_the_equivalent_sequential(tmp_path, batchnorm):
    source = torch_mlp(batchnorm, seed=4)
    model = layerkit_mlp(batchnorm)
    model.load_weights(_saved(tmp_path, source))
    # Change the weights so the check does not pass by copying the source back.
    for p in model.trainable_weights:
        p.assign(p.value * 1.5 + 0.01)
    path = model.save_weights(tmp_path / "out.safetensors")
    state = load_file(path)
    net = torch_mlp(batchnorm, seed=99)
    net.load_state_dict(state, strict=True)
    assert max_diff(model, net.eval()) < TOL
    assert state["0.weight"].shape == (8, 6)
    # And back into a fresh layerkit model, by name this time.
    again = layerkit_mlp(batchnorm, names=["h1", "bn", "h2", "out"])
    assert [b for _, b in again.load_weights(path)] == [b for _, b in model.load_weights(path)]
    for got, want in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def _saved(tmp_path, net) -> str:
    path = tmp_path / "source.pt"
    torch.save(net.state_dict(), path)
    return str(path)


def test_safetensors_naming_counts_activation_modules(tmp_path):
    model = lk.Sequential(
        [
            lk.layers.Input((6,)),
            lk.layers.Dense(4, activation="relu"),  # modules 0 (Linear), 1 (ReLU)
            lk.layers.Dropout(0.5),  # 2
            lk.layers.Dense(3),  # 3, linear: no activation module
            lk.layers.Dense(2, activation="softmax"),  # 4, 5
        ]
    )
    state = load_file(model.save_weights(tmp_path / "m.safetensors"))
    assert sorted(state) == ["0.bias", "0.weight", "3.bias", "3.weight", "4.bias", "4.weight"]
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 4),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(4, 3),
        torch.nn.Linear(3, 2),
        torch.nn.Softmax(dim=-1),
    )
    net.load_state_dict(state)
    assert max_diff(model, net.eval()) < TOL


def test_models_pytorch_cannot_name_are_refused_before_writing(tmp_path):
    norm = lk.layers.Normalization()
    norm.adapt(X)
    model = lk.Sequential([lk.layers.Input((6,)), norm, lk.layers.Dense(2)])
    target = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match=r"'normalization.*\(Normalization\) has weights"):
        model.save_weights(target)
    inputs = lk.layers.Input((6,))
    graph = lk.Model(inputs, lk.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match=r"must be a Sequential\. Received: model of type"):
        graph.save_weights(target)
    assert list(tmp_path.iterdir()) == []
