"""Reports people read: report.json (versioned schema), report.md and a self-contained report.html.

- `write_report(run_dir, export_dir=None, profile=None, *, out_dir=None, latency_statistic="mean")`
  -> path of report.html (also writes report.json, report.md, plots/*.png).
- `build_report(...)` -> `Report(document, plots)` without writing the report files.
- `print_summary_table(results, console)`: the terminal table of a report document.
- `accuracy_sentence(pair)`: the motivated model's test gain over its base, and whether it could be chance.
- `cascade_sweep(...)`: the pure-numpy base -> motivated cascade arithmetic.
- `REPORT_SCHEMA`, `validate_report(document)`.

Importing this package imports numpy only; torch, onnxruntime and matplotlib load when used.
"""

from seekdeploy.report._format import accuracy_sentence
from seekdeploy.report.cascade import CascadeSweep, cascade_sweep, softmax
from seekdeploy.report.document import Report, build_report, write_built_report, write_report
from seekdeploy.report.schema import REPORT_SCHEMA, SCHEMA_VERSION, validate_report
from seekdeploy.report.table import print_summary_table

__all__ = [
    "REPORT_SCHEMA",
    "SCHEMA_VERSION",
    "CascadeSweep",
    "Report",
    "accuracy_sentence",
    "build_report",
    "cascade_sweep",
    "print_summary_table",
    "softmax",
    "validate_report",
    "write_built_report",
    "write_report",
]
