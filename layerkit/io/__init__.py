"""Saving and loading: layerkit checkpoints (HDF5), and weights from Keras and TensorFlow.

``model.save`` / ``lk.load_model`` keep everything needed to resume training;
``model.save_weights`` / ``model.load_weights`` move weights by layer name, with a regex
to pick layers, from layerkit, Keras 3, tf.keras 2, TensorFlow 1 and PyTorch files
(``torch.save`` state dicts and ``.safetensors``, read without PyTorch and without running
anything from the file; ``save_weights("m.safetensors")`` writes one PyTorch loads).
``load_keras`` builds a whole model from a Keras file; ``save_keras`` writes Keras 3 files.
"""

from .checkpoint import load_model, restore_training_state, save_model, save_weights
from .keras_export import save_keras
from .keras_model import load_keras
from .stored import FormatError, StoredLayer
from .weights import load_weights, read_any

__all__ = [
    "FormatError",
    "StoredLayer",
    "load_keras",
    "load_model",
    "load_weights",
    "read_any",
    "restore_training_state",
    "save_keras",
    "save_model",
    "save_weights",
]
