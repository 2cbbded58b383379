"""Reuse an MLP trained in PyTorch: restore its lower layers by regex, freeze, new top.

1. A PyTorch MLP (784-300 BatchNorm ReLU-100 ReLU-5) is trained on digits 0-4 and saved
   with ``torch.save(net.state_dict(), "mlp04.pt")``. Without PyTorch installed (or with
   ``--no-torch``) the same network is trained with layerkit instead and written with
   layerkit's own safetensors writer, under PyTorch's names (``mlp04.safetensors``).
2. The whole file is loaded into the equivalent layerkit model (PyTorch's module names
   ``0``, ``1``, ``3``, ``5`` go into the layers by order, ``weight`` transposed into
   ``kernel``) to check that it computes the same logits.
3. A new model for digits 5-9 restores the lower layers only, by regex
   (``layers="[013]"``: the Linear, the BatchNorm and the second Linear), freezes them,
   and trains a new top on 100 images per digit with the frozen-output cache.

Prints what it did and, as its last line,
``source=... source_accuracy_0_4=0.9xxx max_logit_difference=... transfer_accuracy_5_9=0.9xxx``.

Run: ``python examples/reuse_pytorch.py`` (``--quick`` for a smoke test of a few seconds).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _common import at_least, check_input
from mnist_mlp import load_mnist

import layerkit as lk
from layerkit.io.safetensors import torch_state
from layerkit.io.safetensors import write as write_safetensors


def digits(x, y, chosen, per_class=None, rng=None):
    """Samples of the ``chosen`` digits relabelled 0..4; ``per_class`` of each if given."""
    keep = np.isin(y, chosen)
    x, y = x[keep], y[keep].astype(np.int64) - chosen[0]
    if per_class is None:
        return x, y
    picks = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in range(5)])
    return x[picks], y[picks]


def layerkit_mlp(top: str = "outputs") -> lk.Sequential:
    """The layerkit twin of the PyTorch MLP; BatchNorm with PyTorch's eps and momentum."""
    return lk.Sequential(
        [
            lk.layers.Input((784,)),
            lk.layers.Dense(300, name="hidden1"),
            lk.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn1"),
            lk.layers.Activation("relu"),
            lk.layers.Dense(100, activation="relu", name="hidden2"),
            lk.layers.Dense(5, name=top),
        ]
    )


def compile_model(model, learning_rate=1e-3):
    model.compile(
        optimizer=lk.optim.Adam(learning_rate),
        loss=lk.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train_in_pytorch(torch, x, y, epochs: int, seed: int, path: str):
    """Trains the MLP in PyTorch; saves its state dict; returns a logits function."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 300),
        torch.nn.BatchNorm1d(300),
        torch.nn.ReLU(),
        torch.nn.Linear(300, 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 5),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(xs), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(xs[batch]), ys[batch]).backward()
            optimizer.step()
    net.eval()
    torch.save(net.state_dict(), path)

    def logits(inputs):
        with torch.no_grad():
            return net(torch.from_numpy(inputs)).numpy()

    return logits


def train_in_layerkit(x, y, epochs: int, seed: int, path: str):
    """The stand-in without PyTorch: the same MLP trained by layerkit, written as the
    state dict of the equivalent ``nn.Sequential`` (``0.weight``, ``1.running_mean``...)."""
    lk.utils.set_random_seed(seed)
    source = compile_model(layerkit_mlp())
    source.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    # As PyTorch's safetensors.torch.save_file(net.state_dict(), path) would write it
    # (source.save_weights(path) would also record layerkit's layer names in the file).
    state, _ = torch_state(source)
    write_safetensors(path, state, {"format": "pt"})
    return lambda inputs: source.predict(inputs, batch_size=1024, verbose=0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder holding the MNIST files")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--source-epochs", type=at_least(1), help="epochs on digits 0-4 (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--epochs", type=at_least(1), help="max epochs of the new top (default 100; --quick: 10)"
    )
    parser.add_argument(
        "--no-torch", action="store_true", help="train the source with layerkit even if "
        "PyTorch is installed (the fallback path)"
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a smoke test of a few seconds")
    args = parser.parse_args(argv)
    check_input(parser, "--data", args.data)
    source_epochs = args.source_epochs or (1 if args.quick else 3)
    epochs = args.epochs or (10 if args.quick else 100)

    try:
        import torch
    except ImportError:
        torch = None
    if args.no_torch:
        torch = None
    if torch is not None:
        torch.set_num_threads(1)  # tiny batches: more threads only add overhead

    (x, y), (x_test, y_test) = load_mnist(args.data, quick=args.quick)
    x04, y04 = digits(x, y, (0, 1, 2, 3, 4))
    x04_test, y04_test = digits(x_test, y_test, (0, 1, 2, 3, 4))
    rng = np.random.default_rng(args.seed)
    x59, y59 = digits(x, y, (5, 6, 7, 8, 9), per_class=100, rng=rng)
    half = len(x_test) // 2  # validation on one half of the test set, test on the other
    x59_val, y59_val = digits(x_test[:half], y_test[:half], (5, 6, 7, 8, 9))
    x59_test, y59_test = digits(x_test[half:], y_test[half:], (5, 6, 7, 8, 9))

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        if torch is not None:
            source = "pytorch"
            path = os.path.join(folder, "mlp04.pt")
            logits = train_in_pytorch(torch, x04, y04, source_epochs, args.seed, path)
        else:
            source = "layerkit-safetensors"
            path = os.path.join(folder, "mlp04.safetensors")
            logits = train_in_layerkit(x04, y04, source_epochs, args.seed, path)
        seconds = time.perf_counter() - start
        print(f"source: {source}, {source_epochs} epochs on digits 0-4 in {seconds:.1f} s, "
              f"written to {os.path.basename(path)}")  # fmt: skip
        reference = logits(x04_test)
        source_accuracy = float(np.mean(reference.argmax(axis=1) == y04_test))

        # 2. The whole file in the layerkit twin: the same logits.
        twin = compile_model(layerkit_mlp())
        pairs = twin.load_weights(path)
        print("restored by order:", ", ".join(f"{a} -> {b}" for a, b in pairs))
        difference = float(
            np.abs(twin.predict(x04_test, batch_size=1024, verbose=0) - reference).max()
        )
        print(f"digits 0-4: source accuracy {source_accuracy:.4f}, max |logit difference| of the "
              f"layerkit twin {difference:.2e}")  # fmt: skip

        # 3. The lower layers by regex, frozen and cached; a new top for digits 5-9.
        lk.utils.set_random_seed(args.seed)
        model = compile_model(layerkit_mlp(top="new_outputs"))
        restored = model.load_weights(path, layers="[013]")
        frozen = model.freeze("hidden1|bn1|hidden2")
        print(f"restored {restored}, frozen {frozen}")
        start = time.perf_counter()
        model.fit(
            x59,
            y59,
            batch_size=32,
            epochs=epochs,
            verbose=0,
            validation_data=(x59_val, y59_val),
            callbacks=[
                lk.callbacks.EarlyStopping(
                    monitor="val_loss", patience=10, restore_best_weights=True
                )
            ],
            cache_frozen=True,
        )
        seconds = time.perf_counter() - start
    transfer = model.evaluate(x59_test, y59_test, batch_size=1024, return_dict=True)["accuracy"]
    print(f"new top on 5-9 (100 images per digit): {transfer:.4f} test accuracy, {seconds:.1f} s")
    result = {
        "source": source,
        "source_accuracy_0_4": source_accuracy,
        "max_logit_difference": difference,
        "transfer_accuracy_5_9": float(transfer),
    }
    print(
        f"source={source} source_accuracy_0_4={source_accuracy:.4f} "
        f"max_logit_difference={difference:.1e} transfer_accuracy_5_9={transfer:.4f}"
    )
    return result


if __name__ == "__main__":
    main()
