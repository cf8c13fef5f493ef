"""`python -m qwen_hpc <stage|command> [overrides]`: the same as the `qwen-hpc` command."""

import sys

from qwen_hpc.cli import main

sys.exit(main())
