"""`python -m server`: run the gRPC server (see server.app)."""

import sys

from server.app import main

sys.exit(main())
