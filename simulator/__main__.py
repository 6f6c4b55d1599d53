import sys

from nbtrace.sim.cli import main

sys.exit(main())
