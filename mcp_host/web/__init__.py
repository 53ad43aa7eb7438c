"""The web chat's static files (`index.html`, `app.js`, `app.css`), served by `mcp_host.api.web_routes`.

Hand-written, no build step: the files ship in the package as they are, and load nothing from elsewhere.
"""
