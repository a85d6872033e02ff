"""The demo report: figures (``charts``) and the report folder writer (``html``)."""
