"""Test helpers for hyperagents and its plug-ins.

* :mod:`hyperagents.testing.storage`: :class:`~hyperagents.testing.storage.StorageConformanceTests`,
  the conformance suite every storage backend must pass (it imports pytest, so import it only
  from tests).
"""

from hyperagents.testing.fake_openai import FakeOpenAIServer, FakeReply

__all__ = ["FakeOpenAIServer", "FakeReply"]
