"""One object version's run: check, read, extract, index and record."""
