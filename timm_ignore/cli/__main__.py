"""``python -m timm_ignore.cli``: the ``timm-ignore`` command where the console script is not on the PATH."""
import sys

from . import main

sys.exit(main())
