"""Ready-made datasets, loaded as Keras's ``keras.datasets`` loads them.

Example:
    >>> from layerkit.datasets import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()
"""

from . import mnist

__all__ = ["mnist"]
