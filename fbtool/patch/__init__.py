"""Rewriting Flex ops into builtins directly in the flatbuffer, changing only what must change.

Start at :mod:`.api` (what a rule sees and returns) and docs/rewrites.md (adding a rule or a fusion);
:mod:`.rules` registers every rule and pattern, :mod:`.engine` applies them, :mod:`.rewrite` writes.
"""
