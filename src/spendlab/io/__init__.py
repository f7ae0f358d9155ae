"""Readers, validation, reject records and atomic writers."""

from spendlab.io.load import Transactions, load_transactions
from spendlab.io.rejects import FileReport, LoadReport, Mode, RejectRecord

__all__ = [
    "FileReport",
    "LoadReport",
    "Mode",
    "RejectRecord",
    "Transactions",
    "load_transactions",
]
