"""`radsal demo`: a client of the services that builds a small, rateable study end to end.

One file per concern, in the order the build runs them:

- ``options``: what to build (`DemoOptions`) and the demo's own error; free of torch, so the
  CLI reads its defaults without loading the heavy parts.
- ``manifest``: ``demo.json`` and the resumable `Steps` runner (reuse unchanged work).
- ``progress``: everything the demo prints while it works (numbered steps, progress bars).
- ``data``: synthetic lesions or the user's images, as one CSV.
- ``models``: training and evaluating the two models with ml, like ``radsal train`` would.
- ``accounts``: the admin, researcher and rater accounts.
- ``study``: checkpoint and image import, the study, its saliency maps.
- ``pipeline``: `build_demo`, which runs the steps above in order.
- ``summary``: what the user reads at the end; ``reset``: ``--reset``.
"""
