"""The udsink Kubernetes operator: the UDSink API, its CRD, pure builders and kopf wiring."""
