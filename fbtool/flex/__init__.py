"""Decoding Flex and custom operators: FlexBuffers, TensorFlow NodeDefs, the op catalog."""
