"""The old name of scripts/aws_twin.py, kept for callers not moved yet (tests/common/mod.rs
starts `scripts/moto_faults.py`). Same flags, same behaviour: it runs the AWS twin."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_twin  # noqa: E402

if __name__ == "__main__":
    aws_twin.main()
