"""The `browser` tool with gpt-oss semantics: search, open, find over a stack of pages."""

from mcp_host.tools.native.browser.addresses import AddressGuard
from mcp_host.tools.native.browser.page import Page
from mcp_host.tools.native.browser.session import BrowserError, BrowserSession, Citation
from mcp_host.tools.native.browser.tool import BrowserFunction, browser_tools

__all__ = ["AddressGuard", "BrowserError", "BrowserFunction", "BrowserSession", "Citation", "Page", "browser_tools"]
