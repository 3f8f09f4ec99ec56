"""The interface of a task adapter (:mod:`acnet_backbone.deploy.core` calls
it; :mod:`.detection` and :mod:`.segmentation` implement it)."""
from typing import Any, Dict, List, Tuple

from mmengine.config import Config
from torch import nn


class Task:
    """What the deploy core needs to know about one kind of model.

    Attributes:
        name (str): the kind, in messages (``'detector'``).
        default_shape (tuple[int, int]): H, W of the random check input.
    """
    name = 'model'
    default_shape: Tuple[int, int] = (512, 512)

    def check_options(self, opts) -> None:
        """Refuse options this task does not take (``FuseError``)."""

    def build(self, cfg: Config) -> nn.Module:
        """The model of ``cfg`` with no backbone init (a checkpoint supplies
        the weights)."""
        raise NotImplementedError

    def stock_config(self, cfg: Config) -> Config:
        """The config of the fused, stock model (a changed deep copy);
        refuses a backbone of no kind this package fuses."""
        raise NotImplementedError

    def check_model(self, model: nn.Module, opts, config: str) -> None:
        """Refuse a built model the options cannot deploy."""

    def verify(self, report: Dict, model: nn.Module, stock: nn.Module,
               cfg: Config, opts, logger) -> Any:
        """Check the stock model against the trained one, add the results
        to ``report``; return what :meth:`add_onnx` needs.

        Raises:
            FuseError: the check failed.
        """
        raise NotImplementedError

    def fused_error(self, report: Dict) -> float:
        """The fused-vs-trained relative error of ``report``."""
        raise NotImplementedError

    def add_onnx(self, report: Dict, model: nn.Module, stock: nn.Module,
                 state: Any, path: str, opts, logger) -> None:
        """Export the stock model to ``path``, check it in onnxruntime, add
        the results to ``report``."""
        raise NotImplementedError

    def summary_lines(self, report: Dict) -> List[str]:
        """The console summary of a report."""
        raise NotImplementedError
