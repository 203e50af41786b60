"""`seekdeploy run`: the whole flow, train → slice → export → profile → report, resumable.

- `context`: the request, the stage names, pipeline.json and `run_stage` (skip or run + record);
- `stages`: per stage, "is it current?" (from its artifacts) and "do it" (the command's library
  function);
- `run`: `run_pipeline` (every stage in order) and the closing PASSED/FAILED line.

Importing this package stays light (no torch): the stages import their libraries when they run.
"""

from __future__ import annotations

from seekdeploy.pipeline.context import (
    PipelineConfig,
    PipelineContext,
    PipelineError,
    PipelineResult,
    PipelineState,
    Stage,
    StageOutcome,
)
from seekdeploy.pipeline.run import open_context, run_pipeline, summarize

__all__ = [
    "PipelineConfig", "PipelineContext", "PipelineError", "PipelineResult",
    "PipelineState", "Stage", "StageOutcome", "open_context", "run_pipeline", "summarize",
]
