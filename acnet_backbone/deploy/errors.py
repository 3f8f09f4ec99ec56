"""The deploy error (defined with the package's others in
:mod:`acnet_backbone.errors`)."""
from ..errors import FuseError

__all__ = ['FuseError']
