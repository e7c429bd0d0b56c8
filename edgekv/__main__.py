import sys

from edgekv.cli.main import main

sys.exit(main())
