import sys

from nbtrace.sim.entry import main

sys.exit(main())
