"""Architecture reports: `data` reads a study, `plots` draws it, `site` writes HTML, Markdown and CSV."""
