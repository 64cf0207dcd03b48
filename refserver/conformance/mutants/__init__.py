"""How strong the harness is: plant server bugs one at a time and count how many it catches alone.

    python -m refserver.conformance.mutants                 # both kinds, the kill rate and the survivors
    python -m refserver.conformance.mutants --kind boundary --only ws.1006-as-1000
    python -m refserver.conformance.mutants --write-docs    # also update docs/conformance.md

Two kinds of mutant:

- **own** (:mod:`.own`): a small edit of refserver's own source, applied to a scratch copy of the
  package in a temporary directory (never to the working tree); the catalogue runs against
  refserver started from that copy.
- **boundary** (:mod:`.boundary`): a wrapper between the server and the probe app that changes
  what the app receives or what reaches the server; it works for any server, and runs here
  on an unchanged refserver.

A mutant is *caught* when the catalogue, run against refserver alone, reports that refserver
missed one of its own expectations (what ``python -m refserver.conformance`` exits 1 for), and
does so again when the scenarios that caught it are run once more (a shared machine can make a
deadline slip once; a planted bug is seen every time). Each mutant runs in a process of its own,
at most two at a time.
"""
