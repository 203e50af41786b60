"""The Click command line. Importing it must not import torch, onnx, onnxruntime or tensorrt:
every command imports its heavy machinery inside its body."""
