import sys

from refserver.conformance.mutants.run import main

sys.exit(main())
