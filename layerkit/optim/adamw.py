"""AdamW: Adam with decoupled weight decay (Loshchilov and Hutter, 2019)."""

from __future__ import annotations

from .adam import Adam


class AdamW(Adam):
    """Keras 3's AdamW: :class:`~layerkit.optim.Adam` whose ``weight_decay`` defaults to
    0.004 and must be set.

    Each step first decays the weights, ``w -= w * weight_decay * lr`` (after clipping,
    skipping parameters passed to :meth:`exclude_from_weight_decay`), then takes Adam's
    step. The decay does not go through the moments, unlike an L2 term in the loss.

    Example:
        >>> opt = AdamW(learning_rate=0.001, weight_decay=0.004)
        >>> opt.exclude_from_weight_decay(var_names=["bias"])
    """

    def __init__(
        self,
        learning_rate=None,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs,
    ) -> None:
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(
            learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            weight_decay=weight_decay,
            **kwargs,
        )
