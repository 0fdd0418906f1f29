import sys

from sweeps._cli import main

sys.exit(main())
