"""What the e2e tier's tests and fixtures use, one concern a module (tests/e2e/conftest.py
holds only the fixtures, each delegating here):

- `tools`: running kubectl, helm and ctr, a failure showing the command and its output.
- `control_plane`: etcd, kube-apiserver and kube-controller-manager as processes;
  `ControlPlane`, kubectl against it, reading objects and their conditions.
- `node`: the node harness (scripts/e2e_node.sh) and the images it builds and imports.
- `helm_release`: the operator installed by the chart for a block (`installed`, giving an
  `OperatorRun`), `helm test`.
- `pods`: a UDSink's pods, their readiness and HTTP port, the report of pods and events.
- `reports`: `eventually` (the tier's way to wait) and `Waiter`, which report what failed.
- `udsinks`: the examples made runnable here, a UDSink's status and children, `wait_ready`.
- `watch`: every version of every UDSink, for the no-finalizer promise.

What other tiers use too lives in tests/support (the Kafka broker, waiting, UDSink documents).
"""
