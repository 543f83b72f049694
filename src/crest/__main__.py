import sys

from crest.cli import main

sys.exit(main())
