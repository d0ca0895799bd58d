"""The one EventBridge pattern for Macie findings.

It is the single source of truth for the member forwarding rule, the central intake rule and the
sandbox. It matches sensitive-data and policy findings alike: the finding handler decides (and records)
what to do with each, so a policy finding is ignored on purpose rather than lost on the way.
"""

import re
from typing import Final

MACIE_SOURCE: Final = "aws.macie"
MACIE_DETAIL_TYPE: Final = "Macie Finding"

MACIE_FINDING_PATTERN: Final[dict[str, list[str]]] = {
    "source": [MACIE_SOURCE],
    "detail-type": [MACIE_DETAIL_TYPE],
}

# A Macie finding id (always re.fullmatch: `$` in re.match accepts a trailing newline). Here rather than in
# `finding` (which uses it too) so the reconciler checks ids without importing the event models (architecture §6).
FINDING_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
