"""Training on the collection itself (PyTorch, CPU or GPU); results export to ONNX."""
