"""`python -m anomaly_monitor run|validate`."""

import sys

from anomaly_monitor.cli import main

sys.exit(main())
