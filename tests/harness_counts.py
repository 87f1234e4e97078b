"""Sum the examples per property that ``check_layer`` ran for every built-in
layer, from a pytest JUnit report of ``tests/test_harness.py``::

    HYPOTHESIS_PROFILE=nightly python -m pytest tests/test_harness.py \\
        -k every_builtin --junitxml=harness.xml -o junit_family=xunit1
    python tests/harness_counts.py harness.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter


def totals(report: str) -> tuple[int, Counter[str]]:
    """``(kinds, examples per property)`` over the report's test cases."""
    total: Counter[str] = Counter()
    kinds = 0
    for prop in ET.parse(report).iter("property"):
        if prop.get("name") == "counts":
            kinds += 1
            total.update(json.loads(prop.get("value", "{}")))
    return kinds, total


if __name__ == "__main__":
    n, counts = totals(sys.argv[1])
    print(f"{n} kinds")
    for key in sorted(counts):
        print(f"{key:<24} {counts[key]:>9,}")
