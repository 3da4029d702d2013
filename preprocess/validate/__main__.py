import sys

from preprocess.validate.cli import main

sys.exit(main())
