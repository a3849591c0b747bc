# Produces onnx-shape-reference.json: the shapes ONNX's OWN shape inference (onnx 1.12,
# onnx.shape_inference.infer_shapes with data propagation) reports for the PaddleOCR models
# once their input is made static. It is a peer reference for Quant.Onnx.Shapes.ShapeInference,
# not our output. Run once with /usr/bin/python3 (has onnx); the tests never run Python.
#   /usr/bin/python3 make_shape_reference.py /path/to/.cache/assets/ocr-models > onnx-shape-reference.json
import json, sys, os
import onnx
from onnx import shape_inference

CASES = [
    ("det", "ch_PP-OCRv4_det_infer.onnx", [1, 3, 640, 640]),
    ("det", "ch_PP-OCRv4_det_infer.onnx", [2, 3, 480, 320]),
    ("rec", "ch_PP-OCRv4_rec_infer.onnx", [1, 3, 48, 320]),
    ("cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", [1, 3, 48, 192]),
]

folder = sys.argv[1]
out = {"generator": "onnx %s shape_inference.infer_shapes(strict_mode=False, data_prop=True)" % onnx.__version__, "cases": []}
for model_id, file, shape in CASES:
    m = onnx.load(os.path.join(folder, file))
    inp = m.graph.input[0]
    for d, v in zip(inp.type.tensor_type.shape.dim, shape):
        d.Clear()
        d.dim_value = v
    # Drop declared output shapes so they do not leak symbols into the reference.
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    inferred = shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    values = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            dims = None
        else:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        values[vi.name] = {"type": tt.elem_type, "shape": dims}
    out["cases"].append({"model": model_id, "input": inp.name, "shape": shape, "values": values})
json.dump(out, sys.stdout, separators=(",", ":"), sort_keys=True)
