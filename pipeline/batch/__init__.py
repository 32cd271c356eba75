"""Batches that never lose a call: runner, engines (local processes, Dask), single writer, re-analysis.

Entry points: :func:`run_batch` (``callqa batch``), :func:`reanalyze_store`
(``callqa reanalyze``); see docs/BATCH.md.
"""

from .manifest import ManifestError, WorkItem, read_source
from .reanalyze import reanalyze_record, reanalyze_store
from .runner import BatchError, BatchOptions, run_batch, summary_text

__all__ = ["BatchError", "BatchOptions", "ManifestError", "WorkItem", "read_source", "reanalyze_record",
           "reanalyze_store", "run_batch", "summary_text"]
