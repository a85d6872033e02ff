import sys

from kinemic.cli import main

sys.exit(main())
