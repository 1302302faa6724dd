"""Rewriting Flex ops into builtins directly in the flatbuffer, changing only what must change."""
