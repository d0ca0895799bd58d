"""`python -m macie_chatops` is the operator CLI."""

import sys

from macie_chatops.cli import main

sys.exit(main())
