"""The network at run time, without ROS: frames in, depth out (torch, CUDA graphs or
onnxruntime), the ONNX export, and scene text chosen from the image."""
