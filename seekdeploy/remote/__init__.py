"""Remote profiling over SSH: a validated target, a session on the system ssh, and a standalone agent.

`seekdeploy.measure.remote.profile_remote` is the entry point the `profile --host` command calls.
`agent.py` and `agent_tensorrt.py` are standalone scripts shipped to the device (standard library,
numpy and the runtime only); nothing here imports torch, onnx or onnxruntime at import time.
"""
