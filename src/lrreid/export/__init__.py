"""Export a trained pipeline for runtimes without lrreid (ONNX)."""
from lrreid.export.onnx import export_onnx

__all__ = ["export_onnx"]
