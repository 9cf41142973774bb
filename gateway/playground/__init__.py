"""The browser playground: a hand-written static app (HTML, CSS, ES modules) served by the gateway itself.

``assets.py`` reads the files once and names each by its content hash; ``controllers.py`` serves the page at
``/playground`` and sends browsers from ``/`` there. No build step, no CDN, no external fonts.
"""
