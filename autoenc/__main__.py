# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""``python -m autoenc``."""

from autoenc.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
