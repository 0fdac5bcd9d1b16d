"""Calibration against real purchase data.

:mod:`~simulator.calibration.transactions` reads and cleans a retailer's transaction log;
:mod:`~simulator.calibration.reference` fits the field's reference models (BG/NBD for repeat
buying, Gamma-Gamma for spend) that the simulator's behaviour is calibrated and checked against.
"""

from simulator.calibration.reference import BGNBD, GammaGamma, rfm_summary
from simulator.calibration.transactions import (
    CleaningReport,
    TransactionLog,
    read_cdnow,
    read_transactions,
)

__all__ = [
    "BGNBD",
    "CleaningReport",
    "GammaGamma",
    "TransactionLog",
    "read_cdnow",
    "read_transactions",
    "rfm_summary",
]
