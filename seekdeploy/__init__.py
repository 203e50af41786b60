"""seekdeploy: train a nested base/motivated classifier pair and ship it to edge devices.

Importing this package is cheap: it imports no torch, onnx, onnxruntime or tensorrt.
"""

__version__ = "0.1.0"
