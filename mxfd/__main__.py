import sys

from mxfd.cli import main

sys.exit(main())
