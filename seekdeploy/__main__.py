"""`python -m seekdeploy …` runs the CLI (this is also what `torchrun -m seekdeploy` uses)."""

import sys

from seekdeploy.cli.main import main

sys.exit(main())
