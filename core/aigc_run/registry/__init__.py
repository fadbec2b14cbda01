"""The run registry: what every run did, on SQLite by default or PostgreSQL for teams.

``schema`` holds the tables, ``records`` the plain objects that reads return, ``store``
the ``Registry`` that opens (and migrates), writes and reads them.
"""

from aigc_run.registry.records import (
    CheckpointInfo,
    EvaluationPoint,
    RunDetail,
    RunSummary,
    SampleCounts,
    SampleInfo,
)
from aigc_run.registry.schema import FINAL_STATUSES, STATUSES
from aigc_run.registry.store import SQLITE_BUSY_TIMEOUT_S, Registry

__all__ = [
    "FINAL_STATUSES",
    "SQLITE_BUSY_TIMEOUT_S",
    "STATUSES",
    "CheckpointInfo",
    "EvaluationPoint",
    "Registry",
    "RunDetail",
    "RunSummary",
    "SampleCounts",
    "SampleInfo",
]
