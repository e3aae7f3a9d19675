"""Digital numbers to physical values (pure functions, no I/O)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from senprep_core.errors import MetadataError

#: Scale of the L2A AOT and WVP layers (AOT_QUANTIFICATION_VALUE / WVP_QUANTIFICATION_VALUE).
AUXILIARY_QUANTIFICATION = 1000.0


def dn_to_reflectance(dn: ArrayLike, offset: float, quantification: float) -> np.ndarray:
    """Reflectance ``(DN + offset) / quantification`` as float32, NaN where ``DN == 0`` (no data).

    ``offset`` is the additive DN offset of the band (``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET``,
    -1000 from processing baseline 04.00, else 0); ``quantification`` is usually 10000.
    """
    if not quantification > 0:
        raise MetadataError(
            f"quantification value must be > 0, got {quantification!r}; "
            "check QUANTIFICATION_VALUE in the product metadata"
        )
    raw = np.asarray(dn)
    out = (raw.astype(np.float32) + np.float32(offset)) / np.float32(quantification)
    out[raw == 0] = np.nan
    return out.astype(np.float32, copy=False)


def dn_to_auxiliary(dn: ArrayLike, quantification: float = AUXILIARY_QUANTIFICATION) -> np.ndarray:
    """AOT / WVP value ``DN / quantification`` as float32, NaN where ``DN == 0``."""
    return dn_to_reflectance(dn, 0.0, quantification)
