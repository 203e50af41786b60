"""Train against the profile: latency prediction, device calibration and the pair planner.

- `predictor`: `RooflinePredictor` (declared hardware figures) and `CalibratedPredictor` (a fit
  on latencies measured on the target), `load_predictor(profile)` picks the best usable one.
- `calibration`: designs, exports and times a set of specs on the target and fits the model,
  stored as `profiles/<name>.latency.json` with the device fingerprint.
- `space`, `grid_costs` and `planner`: the family's spec grid (declared by the family in
  `seekdeploy.nn`: ResNet-110 depths, 4x widths, ...),
  every spec of it costed at once, and `plan_pair`, which picks the largest motivated spec and the
  largest base nested in it with at most half its FLOPs that meet the profile's budgets, and says
  what stopped each role growing (`_pair_rules`).

Importing this package imports neither torch nor onnx; only calibration does, inside functions.
"""
