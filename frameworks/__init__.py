"""Real frameworks served by refserver: a scripted run of each and the document it makes.

``python -m frameworks --write`` (from the repository root, with ``pip install -e '.[frameworks,test]'``)
runs every framework of :data:`frameworks.doc.FRAMEWORKS` in its own process on refserver with
``--app-violations warn`` (:mod:`frameworks.script`) and writes docs/framework-findings.md
(:mod:`frameworks.doc`). Each framework's app is one small module in :mod:`frameworks.apps`.
"""
