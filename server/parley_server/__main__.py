import sys

from parley_server.cli import main

sys.exit(main())
