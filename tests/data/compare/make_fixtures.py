#!/usr/bin/python3
"""Writes the small models and samples the compare tests read (run once; the outputs are committed).

Needs Debian's python3-onnx and python3-numpy (apt-get install -y python3-onnx). Neither the product nor the
tests run this: they read the files it wrote.

- log_negative.onnx: x[1,8] -> Sub(0.5) -> Log -> Mul(2) -> y. A value of x below 0.5 makes Log see a negative
  number (NaN); calib/ holds samples with x >= 0.6 (all finite, what the export calibrates on), probe/ one sample
  with x = 0.1 in it.
- fp16_overflow.onnx: x[1,8] -> Mul(1000) -> Mul(100) "Mul_big" -> Div(1000) -> y. For x up to 1 the second Mul's
  output reaches 1e5, beyond float16's 65504; a config that puts Mul_big at float16 makes it overflow there.
- concat_ranges.onnx: x[1,8] -> Mul(200) -> Relu -> Concat with Relu(x) on axis 1 -> y: two inputs 200x apart in range.
"""
import os
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def const(name, value):
    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def save(nodes, inits, name):
    graph = helper.make_graph(nodes, name.replace('.onnx', ''),
                              [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)], producer_name='make_fixtures.py')
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name))


def samples(folder, rows):
    os.makedirs(os.path.join(HERE, folder), exist_ok=True)
    for i, row in enumerate(rows):
        np.save(os.path.join(HERE, folder, f's{i}.npy'), np.array([row], dtype=np.float32))


save([helper.make_node('Sub', ['x', 'half'], ['shifted'], name='Sub_0'),
      helper.make_node('Log', ['shifted'], ['logged'], name='Log_1'),
      helper.make_node('Mul', ['logged', 'two'], ['y'], name='Mul_2')],
     [const('half', 0.5), const('two', 2.0)], 'log_negative.onnx')

save([helper.make_node('Mul', ['x', 'k1000'], ['scaled'], name='Mul_0'),
      helper.make_node('Mul', ['scaled', 'k100'], ['big'], name='Mul_big'),
      helper.make_node('Div', ['big', 'k1000'], ['y'], name='Div_2')],
     [const('k1000', 1000.0), const('k100', 100.0)], 'fp16_overflow.onnx')

save([helper.make_node('Mul', ['x', 'k200'], ['large'], name='Mul_0'),
      helper.make_node('Relu', ['large'], ['large_relu'], name='Relu_1'),
      helper.make_node('Relu', ['x'], ['small'], name='Relu_2'),
      helper.make_node('Concat', ['large_relu', 'small'], ['y'], name='Concat_3', axis=1)],
     [const('k200', 200.0)], 'concat_ranges.onnx')

rng = np.random.default_rng(11)
samples('calib', [0.6 + 0.4 * rng.random(8) for _ in range(4)])
samples('unit', [rng.random(8) for _ in range(4)])
probe = 0.6 + 0.4 * rng.random(8)
probe[3] = 0.1
samples('probe', [probe])
