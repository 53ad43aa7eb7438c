"""Native tools run by the host: `python` (and `browser`, to come)."""

from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.native.python import PYTHON_SPEC, PythonTool

__all__ = ["PYTHON_SPEC", "NativeTool", "PythonTool"]
