"""`python -m sink_runtime.dataplane --config FILE`: the runtime container's command."""

from sink_runtime.dataplane.app import main

raise SystemExit(main())
