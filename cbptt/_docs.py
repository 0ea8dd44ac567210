"""Where cbptt's documentation lives: one address for the estimators' HTML
repr links (``_doc_link_template``), the docs build and the tests.

The API pages are built by docs/api.rst's autosummary into
``api/generated/cbptt.<Name>.html`` under this address.
"""
DOCS_URL = "https://cbptt.github.io/cbptt/"
