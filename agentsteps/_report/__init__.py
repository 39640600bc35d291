"""Looking at a run: the report tree, its renderings, the HTML waterfall, the CLI."""
