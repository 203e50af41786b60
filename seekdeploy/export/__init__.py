"""Export machinery: ONNX export and validation, offline optimization, fp16, parity, TensorRT.

Every module here imports torch, onnx, onnxruntime or tensorrt only inside the functions that need
them, so importing `seekdeploy.export` (and the CLI) stays light.

- `onnx_export`: `export_onnx`, `load_onnx_checked`, `DEFAULT_OPSET`, `Exporter`.
- `onnx_passes`: `optimize_onnx`, `convert_fp16`.
- `parity`: `compare_logits`, `check_parity`, `TOLERANCES`, `run_onnx`, `accuracy`, `parity_line`.
- `quantize`: INT8 QDQ ONNX for CPU runtimes (`quantize_int8`, calibration settings, the
  accuracy-drop check).
- Runtime backends' export steps (named by `Backend.export_step`, found through the backend;
  each defines `export_role`, `summary_lines`, optionally `opset_ceiling`): `openvino_parity`
  (OpenVINO vs ONNX Runtime for OpenVINO targets) and `tensorrt_step` (lint, engine or build script).
- `tensorrt/`: engine naming and version guard, lint, trtexec commands and output, build script,
  Python-API engine builder and INT8 entropy calibrator.
- `export_run`: `export_run(run_dir, ExportOptions)` and `slice_run` (the `export`/`slice` commands),
  built from `options` (format/precision table), `export_plan` (what is resolved before anything
  is written: `ExportPlan`), `static_models` (slice + proof, static.pt), `role_export` (one role
  folder, then every backend's export step), `manifest` and `pair` (pair.json).
"""
