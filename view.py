#!/usr/bin/env python3
"""Compare up to ten parrot runs in the browser, or write them to results.html.

    python view.py <run0> [<run1> ... <run9>]          Streamlit app in the browser
    python view.py --html results.html <run0> ...      one static file, no server

A run folder without analysis.json is analysed first. The command line is
broken_record/cli/view.py; the page and results.html are broken_record/view/.
"""

import sys

if __name__ == "__main__":
    if "streamlit" in sys.modules:
        # `streamlit run view.py -- <run folder> ...` (what `python view.py` starts): draw the page
        from broken_record.view.app import main as page

        page(sys.argv[1:])
    else:
        from broken_record.cli.view import main

        sys.exit(main(page=__file__))
