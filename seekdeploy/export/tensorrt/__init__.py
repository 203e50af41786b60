"""TensorRT path: engine naming and version guard, ONNX lint per TensorRT version, trtexec
commands, output parsing and build script, and the Python-API builder with an INT8 calibrator.

Only `builder.py` and `calibrator.create_entropy_calibrator` import `tensorrt` (through
`require`); everything else is plain Python so it can be used and tested without TensorRT.
"""
