"""Writing a tool's outputs all at once or not at all: now in
:mod:`acnet_backbone.staging` (the package's one staging module), re-exported
here."""
from ..staging import check_out_dir, staged_outputs

__all__ = ['check_out_dir', 'staged_outputs']
