"""The op graph in networkx, and what can be read off it (islands, partitions, layers)."""
from .build import ModelGraph, build_graph, op_node, tensor_node
from ..names import layer_of
from .analysis import Island, find_islands, partitions, unused_ops

__all__ = ["ModelGraph", "build_graph", "op_node", "tensor_node", "Island", "find_islands", "layer_of",
           "partitions", "unused_ops"]
