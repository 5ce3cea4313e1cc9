"""``codi-eval view``: a local web viewer of the store, served by the API's own aiohttp app.

Server-side HTML from Jinja2 templates (autoescaped), one local CSS file, no JavaScript
framework, nothing from a CDN: the pages work offline. Pages:

* ``/`` experiments; ``/experiments/{exp}`` its cells table, density curve (inline SVG) and
  A/B table; ``/experiments/{exp}/cell?key=C`` a cell's runs;
* ``/runs/{run_id}`` one run: code, every Chain-of-Density iteration with the entities it
  added highlighted, the final summary, the judge's reason, metrics and the span timeline;
* ``/traces`` the traces made outside experiments (``summarize``, the API's users) and
  ``/traces/{id}`` one of them.

The viewer is mounted only by :func:`codi_eval.api.app.create_app` with ``viewer=True``,
which only ``codi-eval view`` does: it binds 127.0.0.1 and serves without a token (a local,
single-user tool; users' traces are shown to whoever runs it, who can read the store
anyway). ``codi-eval serve`` never mounts it. Requests whose Host is not a loopback name
are refused, so a web page elsewhere cannot read the viewer through DNS rebinding.
"""

from codi_eval.viewer.pages import add_viewer

__all__ = ["add_viewer"]
