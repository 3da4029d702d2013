import sys

from deployer.cli import main

sys.exit(main())
