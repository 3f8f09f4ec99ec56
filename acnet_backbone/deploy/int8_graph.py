"""The ONNX graph work around onnxruntime's quantiser: the opset the
per-channel QDQ needs, shared constants inlined, nodes named and chosen by
scope, and what a QDQ file quantised."""
from typing import Dict, List, Optional, Set, Tuple

from ..errors import FuseError


def network_nodes(graph) -> Set[str]:
    """Names of the nodes that are convolutions or feed one (transitively):
    the network, as opposed to the post-processing after its last convs."""
    producer = {out: node for node in graph.node for out in node.output}
    keep, stack = set(), [n for n in graph.node if n.op_type == 'Conv']
    while stack:
        node = stack.pop()
        if node.name in keep:
            continue
        keep.add(node.name)
        stack.extend(producer[i] for i in node.input if i in producer)
    return keep


def name_nodes(graph) -> None:
    """Give every unnamed node a unique name (node selection needs one)."""
    used = {n.name for n in graph.node}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f'{node.op_type}_{i}'
            while name in used:
                name += '_'
            node.name = name
            used.add(name)


def inline_shared_constants(graph) -> int:
    """Replace each ``Identity`` of an initializer by a copy of it, in place.

    torch's exporter stores equal parameters once and hands them on through
    ``Identity`` nodes (e.g. the zero biases of untrained convs); onnxruntime
    then finds no bias initializer ("Expected bias ... to be an initializer")
    and leaves those convs partly float, which costs speed (measured on the
    R50 RetinaNet: 0.69x instead of 0.23x of the FP32 time).

    Returns:
        int: the number of nodes replaced.
    """
    inits = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep, copies = [], []
    for node in graph.node:
        if node.op_type == 'Identity' and node.input[0] in inits and \
                node.output[0] not in outputs:
            copy = type(inits[node.input[0]])()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            copies.append(copy)
        else:
            keep.append(node)
    if copies:
        del graph.node[:]
        graph.node.extend(keep)
        graph.initializer.extend(copies)
    return len(copies)


def select_nodes(graph, scope: str) -> Tuple[Optional[List[str]],
                                        Optional[List[str]]]:
    """(op types, node names) to quantise for ``scope``."""
    convs = [n.name for n in graph.node if n.op_type == 'Conv']
    if not convs:
        raise FuseError('nothing to quantise: the model has no convolution')
    if scope == 'conv':
        return ['Conv'], convs
    if scope == 'network':
        return None, sorted(network_nodes(graph))
    return None, None


def to_opset(model, opset: int):
    import onnx
    from onnx import version_converter
    current = max((o.version for o in model.opset_import
                   if o.domain in ('', 'ai.onnx')), default=0)
    if current >= opset:
        return model
    try:
        converted = version_converter.convert_version(model, opset)
        onnx.checker.check_model(converted)
    except Exception as err:
        raise FuseError(f'cannot convert the ONNX file from opset {current} '
                        f'to {opset}: {type(err).__name__}: '
                        f'{err}'.splitlines()[0])
    return converted


def count_quantized(path: str) -> Dict[str, int]:
    """How many weight tensors (8-bit constants; int32 biases not counted)
    and activation tensors the QDQ file quantises, and its opset."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    types = {i.name: i.data_type for i in graph.initializer}
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    q = [n for n in graph.node if n.op_type == 'QuantizeLinear']
    dq = [n for n in graph.node if n.op_type == 'DequantizeLinear']
    return dict(
        weights=sum(types.get(n.input[0]) in eight_bit for n in dq),
        activations=sum(n.input[0] not in types for n in q),
        opset=max(o.version for o in model.opset_import
                  if o.domain in ('', 'ai.onnx')))
